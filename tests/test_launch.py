"""pipeline.launch: the Dagger SDK is imported without its runtime checks, the environment
is left as it was; destinations are checked before any engine work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("before", [None, "2"])
def test_the_sdk_is_imported_without_runtime_checks_and_the_environment_kept(
    before: str | None,
) -> None:
    """beartype wraps each SDK method (`__wrapped__`) unless PYTHONOPTIMIZE is set as it
    decorates; sdk_checks_off sets it for the import only."""
    code = (
        "import os\n"
        "from pipeline.launch import sdk_checks_off\n"
        "with sdk_checks_off():\n"
        "    import dagger\n"
        "print(hasattr(dagger.Container.from_, '__wrapped__'), os.environ.get('PYTHONOPTIMIZE'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
    if before is not None:
        env["PYTHONOPTIMIZE"] = before
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == ["False", str(before)], done.stderr
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dagger; print(hasattr(dagger.Container.from_, '__wrapped__'))",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.stdout.strip() == "True", "without it the SDK's methods are wrapped"
