"""The wall time of each awaited step, in order, with a hook that sees each step start and end
(where a progress display plugs in)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.results import Step


class StepHook(Protocol):
    """Told when a step starts and when it ends (with its time and, for a transfer, its size),
    as they happen. `label` names the image the step is for (its tag), "" for a step that
    serves every image of the session (compare's one test run); `ok` is False when the step
    ended in an exception (a failure, or a cancellation because another task failed)."""

    def started(self, name: str, label: str) -> None: ...

    def finished(self, step: Step, label: str, ok: bool) -> None: ...


@dataclass
class Running:
    """A step under way: its body may say how many bytes it moved (an export, a push)."""

    size: int | None = None


@dataclass
class Clock:
    """Times the steps of one build; tells `hook`, if any, as each starts and ends, with the
    clock's `label` (the image's tag: compare runs several builds' steps at once)."""

    hook: StepHook | None = None
    label: str = ""
    steps: list[Step] = field(default_factory=list)
    began: float = field(default_factory=time.time)  # the wall clock as the build began

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Running]:
        if self.hook is not None:
            self.hook.started(name, self.label)
        running = Running()
        ok = False
        start = time.perf_counter()
        try:
            yield running
            ok = True
        finally:
            done = Step(name, time.perf_counter() - start, running.size)
            self.steps.append(done)
            if self.hook is not None:
                self.hook.finished(done, self.label, ok)
