"""Progress on stderr while a run works, so that a slow build can be told from a hung one.

Each step the flows' clocks time (test, build, export, export builder, load, sbom, publish,
run) is shown as it starts and as it ends, with its time and, for a transfer, its size. On a
terminal, a live display (rich's Live) shows the steps under way with their elapsed time and
the steps done with theirs, and is gone once the run ends (the summary lists the steps). In a
pipe or a CI log, one plain line per step as it starts and one as it ends, nothing else:

    pipeline: build ...
    pipeline: build done 3.21s
    pipeline: export ...
    pipeline: export done 0.29s (1.73MB)

With `labelled` (compare, whose builds run at once) each step also names its image's tag.
Under `dagger run` nothing is shown: its own TUI shows the session, and ours would fight it.
With --quiet nothing is shown either. stdout is never written to.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from pipeline.dagger_run import under_dagger_run
from pipeline.results import Step, human_size

PREFIX = "pipeline: "


def _subject(name: str, label: str) -> str:
    """`build`, or `build helloworld:naive` when the step is one image's among several."""
    return f"{name} {label}" if label else name


def _done(step: Step) -> str:
    """`3.21s`, or `0.29s (1.73MB)` for a step that moved bytes."""
    size = f" ({human_size(step.size)})" if step.size is not None else ""
    return f"{step.seconds:.2f}s{size}"


def started_line(name: str, label: str = "") -> str:
    """`pipeline: build ...`"""
    return f"{PREFIX}{_subject(name, label)} ..."


def finished_line(step: Step, label: str = "", ok: bool = True) -> str:
    """`pipeline: export done 0.29s (1.73MB)`, or `pipeline: build stopped after 3.21s` when
    the step ended in an error (the error itself follows, from the CLI)."""
    if not ok:
        return f"{PREFIX}{_subject(step.name, label)} stopped after {step.seconds:.2f}s"
    return f"{PREFIX}{_subject(step.name, label)} done {_done(step)}"


class Lines:
    """The plain display, for a pipe or a CI log: one line per step start and end, written
    and flushed as it happens (a CI log shows it at once)."""

    def __init__(self, stream: TextIO, *, labelled: bool = False) -> None:
        self._stream = stream
        self._labelled = labelled

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def started(self, name: str, label: str) -> None:
        self._write(started_line(name, label if self._labelled else ""))

    def finished(self, step: Step, label: str, ok: bool) -> None:
        self._write(finished_line(step, label if self._labelled else "", ok))

    def pause(self) -> None:
        """Nothing to take off the screen: each line stays where it is."""


@dataclass
class _Image:
    """One image's steps on the live display (compare has several; a run has one, "")."""

    running: dict[str, float] = field(default_factory=dict)  # step → when it started
    done: list[str] = field(default_factory=list)  # `build 3.21s`, `export 0.29s (1.73MB)`
    # A spinner animates from its first render on: kept, not made anew at each redraw.
    spinner: Spinner = field(default_factory=lambda: Spinner("dots"))


class LiveSteps:
    """The terminal display, redrawn by rich's Live: a line with the step under way, its
    elapsed time, and the steps done with theirs (one such line per image with `labelled`);
    transient, so it leaves the screen to the summary once stopped.

    It comes up with the first step, not before: while the session is being opened the SDK
    shows a status line of its own on the terminal (provisioning, connecting), and two live
    displays at once overwrite each other. The SDK's is gone before the first step starts."""

    def __init__(
        self,
        console: Console,
        *,
        labelled: bool = False,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console
        self._labelled = labelled
        self._now = now
        # The hook is called on the event loop's thread, render() on Live's refresh thread.
        self._lock = threading.Lock()
        self._images: dict[str, _Image] = {}  # by label, in the order they first started
        self._idle_since = now()
        self._idle = Spinner("dots")  # between steps, when several images are shown
        self._live: Live | None = None

    def start(self) -> None:
        """Show the display (again, after pause); the first step does."""
        if self._live is None:
            self._live = Live(
                get_renderable=self.render,
                console=self._console,
                transient=True,
                refresh_per_second=8,
                # stdout carries the summary: never routed through this stderr display.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def stop(self) -> None:
        """Take the display off the screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def pause(self) -> None:
        """Off the screen until the next step starts, and forget the steps so far (--watch
        prints a result between builds; the next build starts a fresh display)."""
        self.stop()
        with self._lock:
            self._images.clear()

    def started(self, name: str, label: str) -> None:
        with self._lock:
            image = self._images.setdefault(label if self._labelled else "", _Image())
            image.running[name] = self._now()
        self.start()

    def finished(self, step: Step, label: str, ok: bool) -> None:
        with self._lock:
            image = self._images.setdefault(label if self._labelled else "", _Image())
            image.running.pop(step.name, None)
            outcome = _done(step) if ok else f"stopped after {step.seconds:.2f}s"
            image.done.append(f"{step.name} {outcome}")
            self._idle_since = self._now()

    def render(self) -> RenderableType:
        """What the display shows now: for each image, the step under way (or, between steps,
        the time since the last one ended) and the steps done."""
        with self._lock:
            now = self._now()
            idle = not any(image.running for image in self._images.values())
            working = f"working {now - self._idle_since:.1f}s"
            lines: list[RenderableType] = []
            if idle and len(self._images) > 1:
                self._idle.update(text=working)
                lines.append(self._idle)
            for label, image in self._images.items():
                done = Text(f"done: {', '.join(image.done)}" if image.done else "", style="dim")
                if image.running:
                    under_way = ", ".join(f"{n} {now - t:.1f}s" for n, t in image.running.items())
                    line = f"{label}: {under_way}" if label else under_way
                elif idle and len(self._images) == 1:
                    line = f"{label}: {working}" if label else working
                else:  # the spinner's place left blank: nothing under way for this image
                    lines.append(Text.assemble("  ", f"{label}  " if label else "", done))
                    continue
                image.spinner.update(text=Text.assemble(line, "  " if image.done else "", done))
                lines.append(image.spinner)
            return Group(*lines)


Display = Lines | LiveSteps


@contextlib.contextmanager
def display(
    *,
    quiet: bool,
    env: Mapping[str, str],
    labelled: bool = False,
    stream: TextIO | None = None,
) -> Iterator[Display | None]:
    """The progress display for a run, as a step hook for the flows, or None when
    nothing is to be shown (--quiet, or under `dagger run`). It goes to `stream` (stderr):
    live on a terminal, plain lines elsewhere. It is off the screen once the block ends."""
    if quiet or under_dagger_run(env):
        yield None
        return
    out = sys.stderr if stream is None else stream
    if not (out.isatty() and env.get("TERM") != "dumb"):
        yield Lines(out, labelled=labelled)
        return
    live = LiveSteps(Console(file=out, highlight=False), labelled=labelled)
    try:
        yield live
    finally:
        live.stop()
