"""pipeline.settings: a secret never prints. (The tests of platforms and image references
moved to tests/test_refs.py with them; those of the flags' checks to tests/test_checks.py.)"""

from __future__ import annotations

from pipeline.settings import Secret


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr({"password": secret})
    assert secret.value == "hunter2"
