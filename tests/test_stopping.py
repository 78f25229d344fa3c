"""pipeline.stopping: SIGINT, SIGTERM and SIGHUP each cancel the work, let it clean up, and end
the process with one line and 128 + the signal's number, also where SIGINT was inherited
ignored; a second signal ends it at once, unless it is the first passed on (within a second).
In a child process of its own, as the CLI runs (guarded, around an event loop)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, DoomedEngine, PipelineRunner, go_tests, started

# Each test counts what build/ holds, and the processes it started: no other test at once.
pytestmark = pytest.mark.alone

# What in_engine does around a run (a cancellable event loop, inside guarded), with work that
# takes `cleanup` seconds to clean up once cancelled, and marks what happened in `marks`.
CHILD = """
import sys
from pathlib import Path

import anyio

from pipeline import stopping
from pipeline.cli.launch import guarded

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


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["SIGINT first", "SIGTERM first"],
)
def test_a_signal_passed_on_within_a_second_is_the_same_stop(
    tmp_path: Path, signals: tuple[int, int]
) -> None:
    """A terminal's Ctrl-C reaches `dagger run` too, which sends its child SIGTERM at once:
    that is no second signal, and the cleanup goes on. The SIGTERM can come first (it
    overtook the terminal's SIGINT in a CI run): the stop is still Ctrl-C's."""
    marks = tmp_path / "marks"
    with _running(marks, 2) as process:
        process.send_signal(signals[0])
        time.sleep(0.1)
        process.send_signal(signals[1])
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted"]
    assert sorted(p.name for p in marks.iterdir()) == ["cleaned", "started"]


# --- however a real run ends -------------------------------------------------------------

SLOW_TEST = """package main

import (
	"testing"
	"time"
)

// Keeps the build busy (go test) long enough to stop it mid-way.
func TestTakesItsTime(t *testing.T) { time.Sleep(60 * time.Second) }
"""
BROKEN = "package main\n\nfunc init() { undefined() }\n"
PREVIOUS = b"the previous good tarball"


class _Descendants:
    """Every process descended from `top` while it runs (pid and start time, so that a pid
    used again is not taken for it), sampled every 50 ms in a thread: our `dagger session`
    children sit in sessions of their own, so no process group finds them."""

    def __init__(self, top: int) -> None:
        self.seen: dict[tuple[int, str], str] = {}  # (pid, start time) -> command line
        self._top = top
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _stat(pid: int) -> tuple[int, str, str] | None:
        """Its parent, start time and state; None once it is gone."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[1]), fields[19], fields[0]

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            parents: dict[int, list[int]] = {}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and (stat := self._stat(int(entry.name))):
                    parents.setdefault(stat[0], []).append(int(entry.name))
            queue = [self._top]
            while queue:
                pid = queue.pop()
                stat = self._stat(pid)
                if stat is None:
                    continue
                with contextlib.suppress(OSError):
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    self.seen.setdefault((pid, stat[1]), command.decode(errors="replace"))
                queue.extend(parents.get(pid, []))

    def left(self) -> list[str]:
        """Those of them still running (a zombie has ended)."""
        return [
            command
            for (pid, started_at), command in self.seen.items()
            if (stat := self._stat(pid)) and stat[1] == started_at and stat[2] != "Z"
        ]

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


# Exit codes of the command as started: the pipeline's own, or `dagger run`'s (negative: it
# ended by that signal). Ways of stopping: SIGINT and SIGHUP to the whole process group (a
# terminal's Ctrl-C, a terminal closed), SIGTERM to the command alone (`kill PID`, a CI
# cancel), the engine SIGKILLed.
WAYS = {
    ("done", "direct"): 0,
    ("failure", "direct"): 1,
    ("SIGINT", "direct"): 130,
    ("SIGTERM", "direct"): 143,
    ("SIGHUP", "direct"): 129,
    ("engine gone", "direct"): 1,
    ("done", "dagger run"): 0,
    ("failure", "dagger run"): 1,
    ("SIGINT", "dagger run"): 130,
    ("SIGTERM", "dagger run"): -signal.SIGTERM,
    ("SIGHUP", "dagger run"): -signal.SIGHUP,
    ("engine gone", "dagger run"): -signal.SIGTERM,
}
LINES = {
    "SIGINT": "interrupted",
    "SIGTERM": "terminated (SIGTERM)",
    "SIGHUP": "hung up (SIGHUP)",
    "engine gone": "error: the Dagger ",
    "failure": "error: `go ",
}
GONE = "error: the `dagger run` that held this run's session is gone"


@pytest.mark.engine
@pytest.mark.parametrize(
    ("way", "under"),
    [
        # The engine SIGKILLed, a fresh runner's: disruptive (the fresh runner is one).
        pytest.param(
            w,
            u,
            id=f"{w}, {u}",
            marks=[pytest.mark.disruptive, pytest.mark.runner] * (w == "engine gone"),
        )
        for w, u in WAYS
    ],
)
def test_however_a_run_ends_it_ends_in_seconds_and_leaves_nothing(
    pipeline: PipelineRunner,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    way: str,
    under: str,
) -> None:
    """A builder run (its host copy under build/) to --output over a previous tarball: the
    exit code, how long from the stop until the command and every process it started have
    ended, one line that says why, the previous tarball as it was (unless done), and no
    temporary directory in build/ or beside --output."""
    doomed: DoomedEngine | None = None
    if way == "engine gone":  # a fresh runner's: a killed engine wipes its cache at its next start
        doomed = request.getfixturevalue("doomed_engine")
        pipeline = doomed.pipeline
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    if way == "failure":
        (source / "broken.go").write_text(BROKEN)
    elif way != "done":
        (source / "slow_test.go").write_text(SLOW_TEST + f"// {uuid.uuid4().hex}\n")
    output = tmp_path / "out" / "image.tar"
    output.parent.mkdir()
    output.write_bytes(PREVIOUS)
    command = pipeline.command(
        "builder", "--runtime-image", "busybox:1.35", "--source", str(source),
        "--output", str(output), "--quiet", *(("--no-test",) if way == "done" else ()),
    )  # fmt: skip
    if under == "dagger run":
        command = [
            pipeline.env["_EXPERIMENTAL_DAGGER_CLI_BIN"],
            "--progress=plain",
            "run",
            *command,
        ]
    scratch_before = set((ROOT / "build").glob(".pipeline-*"))
    tests_before = go_tests()
    stderr_file = tmp_path / "stderr"
    with (
        stderr_file.open("w") as err,
        started(command, cwd=ROOT, env=pipeline.env, stdout=subprocess.DEVNULL, stderr=err) as top,
    ):
        tree = _Descendants(top.pid)
        try:
            if way in ("done", "failure"):
                stopped = time.monotonic()
                top.wait(timeout=300)
            else:
                deadline = time.monotonic() + 120
                while not go_tests() - tests_before:
                    assert top.poll() is None, stderr_file.read_text()
                    assert time.monotonic() < deadline, "the build never reached its go test"
                    time.sleep(0.2)
                time.sleep(1)
                stopped = time.monotonic()
                if doomed is not None:
                    os.kill(doomed.pid, signal.SIGKILL)
                elif way == "SIGTERM":
                    top.send_signal(signal.SIGTERM)
                else:
                    os.killpg(top.pid, signal.Signals[way])
                top.wait(timeout=60)
            deadline = time.monotonic() + 30
            while tree.left() and time.monotonic() < deadline:
                time.sleep(0.05)
            took = time.monotonic() - stopped
        finally:
            tree.stop()
        left = tree.left()
    stderr = stderr_file.read_text()
    print(f"| {way} | {under} | {top.returncode} | {took:.1f}s | {left or 'nothing'} |")
    assert top.returncode == WAYS[way, under], stderr
    assert left == [], f"still running: {left}"
    if way not in ("done", "failure"):
        limit = 30 if way == "engine gone" else 5
        assert took < limit, f"{took:.1f}s from the stop until everything ended"
    assert "Traceback" not in stderr
    if under == "direct" and way != "failure":  # a failure shows the compiler's output too
        assert len(stderr.strip().splitlines()) == (0 if way == "done" else 1), stderr
    # SIGTERM to `dagger run` alone ends it at once (it passes nothing on): the pipeline
    # finds its parent gone.
    said = GONE if (way, under) == ("SIGTERM", "dagger run") else LINES.get(way)
    if said is not None:
        assert any(line.startswith(said) for line in stderr.splitlines()), stderr
    assert set((ROOT / "build").glob(".pipeline-*")) <= scratch_before
    beside = sorted(p.name for p in output.parent.iterdir())
    if way == "done":
        assert beside == ["helloworld-build.tar", "image.tar", "image.tar.spdx.json"]
        assert output.read_bytes() != PREVIOUS
    else:
        assert beside == ["image.tar"]
        assert output.read_bytes() == PREVIOUS
