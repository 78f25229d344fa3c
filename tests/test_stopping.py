"""pipeline.stopping: SIGINT, SIGTERM and SIGHUP each cancel the work, let it clean up, and end
the process with one line and 128 + the signal's number, also where SIGINT was inherited
ignored; a second signal ends it at once, unless it is the first passed on (within a second).
In a child process of its own, as the CLI runs (guarded, around an event loop)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, started

# What in_engine does around a run (a cancellable event loop, inside guarded), with work that
# takes `cleanup` seconds to clean up once cancelled, and marks what happened in `marks`.
CHILD = """
import sys
from pathlib import Path

import anyio

from pipeline import stopping
from pipeline.launch import guarded

marks, cleanup = Path(sys.argv[1]), float(sys.argv[2])


async def work() -> None:
    try:
        (marks / "started").touch()
        await anyio.sleep(60)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(cleanup)
        (marks / "cleaned").touch()


def run() -> int:
    with stopping.at_once(lambda: (marks / "at once").touch()):
        anyio.run(stopping.cancellable, work)
    return 0


sys.exit(guarded(run, verbose=False))
"""


@contextlib.contextmanager
def _running(
    marks: Path, cleanup: float, *, sigint: signal.Handlers = signal.SIG_DFL
) -> Iterator[subprocess.Popen[str]]:
    """The child, once its work has started."""
    marks.mkdir()
    command = [sys.executable, "-c", CHILD, str(marks), str(cleanup)]
    with started(command, cwd=ROOT, stderr=subprocess.PIPE, sigint=sigint) as process:
        deadline = time.monotonic() + 30
        while not (marks / "started").exists():
            assert time.monotonic() < deadline, "the child never started its work"
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        yield process


@pytest.mark.parametrize(
    ("signum", "sigint", "code", "line"),
    [
        (signal.SIGINT, signal.SIG_IGN, 130, "interrupted"),
        (signal.SIGINT, signal.SIG_DFL, 130, "interrupted"),
        (signal.SIGTERM, signal.SIG_DFL, 143, "terminated (SIGTERM)"),
        (signal.SIGHUP, signal.SIG_DFL, 129, "hung up (SIGHUP)"),
    ],
    ids=["SIGINT inherited ignored", "SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_signal_cancels_the_work_which_cleans_up_then_one_line_and_128_plus_n(
    tmp_path: Path, signum: int, sigint: signal.Handlers, code: int, line: str
) -> None:
    """The first case is a background start (SIGINT inherited ignored, as `nohup bash .ci/run &`
    from a script gives every child): Python alone would never raise KeyboardInterrupt."""
    marks = tmp_path / "marks"
    with _running(marks, 0.2, sigint=sigint) as process:
        sent = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
    assert process.returncode == code, stderr
    assert stderr.splitlines() == [line]
    assert sorted(p.name for p in marks.iterdir()) == ["cleaned", "started"]
    assert took < 5, f"{took:.1f}s"


def test_a_second_signal_ends_it_at_once(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    with _running(marks, 30) as process:
        process.send_signal(signal.SIGTERM)  # CI's cancel; the cleanup would take 30 s
        time.sleep(1.5)
        again = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - again
    assert process.returncode == 143, stderr  # the first signal's code
    assert stderr.splitlines() == ["terminated (SIGTERM), again: stopped at once"]
    assert sorted(p.name for p in marks.iterdir()) == ["at once", "started"]
    assert took < 1, f"{took:.1f}s"


def test_a_signal_passed_on_within_a_second_is_the_same_stop(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches `dagger run` too, which sends its child SIGTERM at once:
    that is no second signal, and the cleanup goes on."""
    marks = tmp_path / "marks"
    with _running(marks, 2) as process:
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted"]
    assert sorted(p.name for p in marks.iterdir()) == ["cleaned", "started"]
