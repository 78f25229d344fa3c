"""The wall time of each awaited step, in order, with a hook that sees each step start and end
(where a progress display plugs in)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.report import Step


class StepHook(Protocol):
    """Told when a step starts and when it ends (with its time), as they happen."""

    def started(self, name: str) -> None: ...

    def finished(self, step: Step) -> None: ...


@dataclass
class Clock:
    """Times the steps of one build; tells `hook`, if any, as each starts and ends."""

    hook: StepHook | None = None
    steps: list[Step] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.hook is not None:
            self.hook.started(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            done = Step(name, time.perf_counter() - start)
            self.steps.append(done)
            if self.hook is not None:
                self.hook.finished(done)
