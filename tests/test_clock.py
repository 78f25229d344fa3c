"""pipeline.clock: each step timed in order, and the hook told as each starts and ends, also
when the step fails (and that it failed), with the clock's label and the bytes a step moved."""

from __future__ import annotations

import time

import pytest

from pipeline.clock import Clock
from pipeline.results import Step


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str, str, bool | None]] = []  # event, name, label, ok

    def started(self, name: str, label: str) -> None:
        self.events.append(("started", name))
        self.calls.append(("started", name, label, None))

    def finished(self, step: Step, label: str, ok: bool) -> None:
        self.events.append(("finished", step.name))
        self.calls.append(("finished", step.name, label, ok))


def test_steps_in_order_with_their_time() -> None:
    clock = Clock()
    with clock.step("build"):
        time.sleep(0.05)
    with clock.step("export"):
        pass
    assert [s.name for s in clock.steps] == ["build", "export"]
    assert clock.steps[0].seconds >= 0.05
    assert clock.steps[1].seconds < clock.steps[0].seconds


def test_the_hook_sees_each_step_start_and_end_even_when_it_fails() -> None:
    hook = Recorder()
    clock = Clock(hook)
    with clock.step("build"):
        assert hook.events == [("started", "build")]  # told before the work, not after
    with pytest.raises(RuntimeError), clock.step("publish"):
        raise RuntimeError("registry gone")
    assert hook.events == [
        ("started", "build"),
        ("finished", "build"),
        ("started", "publish"),
        ("finished", "publish"),
    ]
    assert [s.name for s in clock.steps] == ["build", "publish"]


def test_the_hook_gets_the_label_whether_it_failed_and_the_size() -> None:
    hook = Recorder()
    clock = Clock(hook, label="helloworld:naive")
    with clock.step("export") as running:
        running.size = 1_730_000
    with pytest.raises(RuntimeError), clock.step("publish"):
        raise RuntimeError("registry gone")
    assert hook.calls == [
        ("started", "export", "helloworld:naive", None),
        ("finished", "export", "helloworld:naive", True),
        ("started", "publish", "helloworld:naive", None),
        ("finished", "publish", "helloworld:naive", False),
    ]
    assert [(s.name, s.size) for s in clock.steps] == [("export", 1_730_000), ("publish", None)]
