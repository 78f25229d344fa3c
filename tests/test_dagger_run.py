"""pipeline.dagger_run: the one place that decides whether this process is `dagger run`'s
child. (test_under_dagger_run moved here from tests/test_progress.py with the function.)"""

from __future__ import annotations

from pipeline.dagger_run import under_dagger_run

DAGGER_RUN = {"DAGGER_SESSION_PORT": "36111", "DAGGER_SESSION_TOKEN": "t0ken"}


def test_under_dagger_run() -> None:
    assert under_dagger_run(DAGGER_RUN)
    assert not under_dagger_run({})
    assert not under_dagger_run({**DAGGER_RUN, "DAGGER_SESSION_TOKEN": ""})
