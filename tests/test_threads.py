"""pipeline.registry.threads: a registry's blocking work awaited in a daemon thread, bounded in
time. (Moved out of pipeline.flows.deliver, which had no test of its own for them.)"""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from pipeline.errors import RegistryError
from pipeline.registry.access import Deadline
from pipeline.registry.threads import bounded, in_thread


def test_the_work_answers_from_a_daemon_thread_and_its_budget_is_stopped_after() -> None:
    deadline = Deadline.of(30)
    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 42

    assert anyio.run(in_thread, work, deadline) == 42
    assert seen[0] is not threading.main_thread()
    assert seen[0].daemon
    assert deadline.stop.is_set()


def test_the_works_failure_is_raised_where_it_is_awaited() -> None:
    def work() -> None:
        raise RegistryError("registry r: refused")

    with pytest.raises(RegistryError, match="refused"):
        anyio.run(in_thread, work, Deadline.of(30))


def test_work_over_its_time_is_told_to_stop_and_the_run_goes_on() -> None:
    deadline = Deadline.of(30)

    def work() -> None:
        while not deadline.stop.wait(0.01):  # as transport checks deadline.left before a request
            pass

    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"registry r:5000 did not finish within 0\.2s"):
        anyio.run(bounded, work, deadline, 0.2, "r:5000")
    assert time.monotonic() - started < 5
    assert deadline.stop.is_set()
