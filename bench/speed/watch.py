"""The watch scenario's side of ours: one long-lived `python -m pipeline multistage --watch`
per program, timed from an edit to its rebuilt result.

The process gets the flags of the one-shot `ours (export)` (`--no-test --no-run --output TAR
--json J`) plus `--watch`, and a copy of the program's source of its own (so that the edits of
the other sides, and of the baseline's watch process, never wake it). It keeps one Dagger
session open; after each build it writes J, prints its summary on stdout (kept in a log file
beside J) and then a line starting `watching ` on stderr, or `error: ...` then that line if the
build failed.

Starting it is untimed, up to the end of its first build. Each sample then:

1. reads J's image digest (the unedited tree's image);
2. appends a one-line edit with a fresh nonce to the same source file as the `one-line change`
   scenario, and starts the clock just before the write;
3. stops the clock when the next `watching ` line arrives on stderr (read with a selector, so
   the time is when the line came, not when the bench looked); an `error:` line before it fails
   the sample, and so does a J whose digest did not change (the edit was not rebuilt);
4. undoes the edit and waits, untimed, for the rebuild that the undo triggers, until J shows
   the unedited image's digest again (the pipeline is reproducible: same tree, same digest).

Every wait has a timeout, after which the bench ends with an error that quotes the process's
last lines. The process is stopped with SIGINT (it exits 130) after the scenario, whatever
happened.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from bench.shared.programs import BenchError, Program, edit_line
from bench.shared.sides import Ours, Run, Workspace, report_detail

FIRST_BUILD_TIMEOUT = 900.0  # the first build may compile everything (age, after a prune)
BUILD_TIMEOUT = 120.0  # each build after an edit, or after undoing it
STOP_TIMEOUT = 60.0
INTERRUPTED = 130  # the pipeline's exit code on SIGINT
WATCHING = "watching "
FAILED = "error:"
TAIL = 25


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class WatchProcess:
    """A running process whose stderr announces each build's end: `watching ...`, after an
    `error: ...` line if the build failed. Its stdout goes to a log file."""

    def __init__(self, name: str, command: Sequence[str], *, cwd: Path, log: Path) -> None:
        self.name = name
        self.log = log
        self._stdout: IO[bytes] = log.open("wb")
        # A child inherits an ignored SIGINT (the bench started with `&` from a script): then
        # the pipeline could not be stopped with it. Give the child the default back.
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        self._process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            preexec_fn=_sigint_default if ignored else None,
        )
        assert self._process.stderr is not None
        self._stderr = self._process.stderr
        self._fd = self._stderr.fileno()
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._partial = b""
        self._ended = False
        self._lines: deque[tuple[float, str]] = deque()
        self.tail: deque[str] = deque(maxlen=TAIL)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _last_lines(self) -> str:
        return "\n".join(self.tail) or "(nothing on stderr)"

    def _read(self, deadline: float, waiting_for: str) -> tuple[float, str]:
        """The next line of stderr and the moment it arrived (time.perf_counter)."""
        while not self._lines:
            if self._ended:
                try:
                    code: int | str = self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    code = "still running, stderr closed"
                raise BenchError(
                    f"{self.name}: the --watch process ended (exit {code}) while the bench "
                    f"waited for {waiting_for}; its last lines:\n{self._last_lines()}"
                )
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(
                    f"{self.name}: no {waiting_for} within the timeout; the --watch process's "
                    f"last lines:\n{self._last_lines()}"
                )
            if not self._selector.select(left):
                continue
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            arrived = time.perf_counter()
            if not chunk:
                self._ended = True
                chunk = b"\n" if self._partial else b""
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                self._lines.append((arrived, line))
                self.tail.append(line)
        return self._lines.popleft()

    def next_build(self, timeout: float, waiting_for: str = "build result") -> float:
        """Wait for the end of the next build; the moment its `watching ` line arrived.
        BenchError if the build failed, if the process ended, or if none ends in time."""
        deadline = time.perf_counter() + timeout
        failed: list[str] = []
        while True:
            arrived, line = self._read(deadline, f"{waiting_for} ({timeout:.0f}s)")
            if line.startswith(FAILED):
                failed.append(line)
            elif line.startswith(WATCHING):
                if failed:
                    raise BenchError(
                        f"{self.name}: the build failed ({waiting_for}): {failed[-1]}\n"
                        f"its last lines:\n{self._last_lines()}"
                    )
                return arrived

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGINT, then wait; kill it if it does not end in time. Its exit code (130 when it
        stopped as asked; negative: the signal that ended it)."""
        try:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    return self._process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    return self._process.wait(timeout=timeout)
            return self._process.returncode
        finally:
            self._selector.close()
            self._stderr.close()
            self._stdout.close()


class OursWatch:
    """The watch scenario's side of ours (or of the baseline): see the module's docstring."""

    def __init__(self, workspace: Workspace, ours: Ours) -> None:
        self.workspace = workspace
        self.ours = ours  # the one-shot export side whose flags (and pipeline/) it uses
        self.process: WatchProcess | None = None
        self.source: Path | None = None
        self.report: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.ours.label} (watch)"

    def _digest(self) -> str | None:
        assert self.report is not None
        try:
            data: dict[str, Any] = json.loads(self.report.read_text())
        except (OSError, ValueError) as err:
            raise BenchError(f"{self.name}: no report at {self.report}: {err}") from None
        digest = data["images"][0].get("digest")
        return str(digest) if digest else None

    def start(self, program: Program, source: Path, say: Callable[[str], None]) -> float:
        """A copy of `source` of its own, the process started on it, its first build done
        (untimed); how long that took."""
        stem = f"{self.ours.label.replace('@', '-')}-watch-{program.name}"
        copy = source.parent / stem
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, symlinks=True)
        self.source = copy
        self.report = self.workspace.out(f"{stem}.json")
        self.report.unlink(missing_ok=True)
        command = self.ours.command(
            program,
            copy,
            self.report,
            output=self.workspace.out(f"{stem}.tar"),
            watch=True,
        )
        begin = time.perf_counter()
        self.process = WatchProcess(
            self.name, command, cwd=self.ours.cwd, log=self.workspace.out(f"{stem}.log")
        )
        say(f"{program.name}: {self.name} started (pid {self.process.pid}), first build…")
        self.process.next_build(FIRST_BUILD_TIMEOUT, "first build")
        return time.perf_counter() - begin

    def sample(self, program: Program, nonce: str) -> Run:
        """One timed rebuild after a one-line edit, then the undo's rebuild (untimed)."""
        assert self.process is not None
        assert self.source is not None
        assert self.report is not None
        unedited = self._digest()
        path = self.source / program.source_file
        original = path.read_bytes()
        changed = edit_line(original, nonce)
        start = time.perf_counter()
        path.write_bytes(changed)
        try:
            arrived = self.process.next_build(BUILD_TIMEOUT, "the rebuild after the edit")
            seconds = arrived - start
            data: dict[str, Any] = json.loads(self.report.read_text())
            detail = report_detail(data)
        finally:
            path.write_bytes(original)
        if detail["digest"] == unedited:
            raise BenchError(
                f"{self.name}: the report after the edit shows the unedited image "
                f"({unedited}): the edit was not rebuilt"
            )
        undone = time.perf_counter()
        self._settle(unedited)
        detail["undo_seconds"] = time.perf_counter() - undone
        return Run(seconds, detail)

    def _settle(self, unedited: str | None) -> None:
        """Wait for the rebuild the undo triggers (and any after it) until the report shows
        the unedited image again: the next sample starts from a quiet process."""
        assert self.process is not None
        deadline = time.perf_counter() + BUILD_TIMEOUT
        while True:
            self.process.next_build(
                deadline - time.perf_counter(), "the rebuild after undoing the edit"
            )
            digest = self._digest()
            if digest == unedited:
                return
            if time.perf_counter() >= deadline - 1:
                raise BenchError(
                    f"{self.name}: after undoing the edit the report shows {digest}, not the "
                    f"unedited image {unedited}: not reproducible, or a rebuild is missing"
                )

    def stop(self) -> int | None:
        """Stop the process (SIGINT); its exit code, None if it was never started."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        return process.stop()
