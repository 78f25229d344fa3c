"""A registry's work (a push, a pull, reading a base's blobs), which oras and requests do
blocking, awaited in a daemon thread of its own and stopped after a time: an interrupted or
overdue transfer is told to stop (its Deadline), and never keeps the process from exiting."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from pipeline.errors import RegistryError
from pipeline.registry.access import Deadline

T = TypeVar("T")


async def in_thread(work: Callable[[], T], deadline: Deadline) -> T:
    """`work()` in a daemon thread of its own, awaited: a push that is interrupted or over
    its deadline is told to stop (deadline.stop), and it never keeps the process from exiting
    (anyio's worker threads would: they are joined at exit)."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(work())
        except BaseException as err:  # noqa: BLE001 (handed to the awaiting task, raised there)
            failure.append(err)
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
                anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=body, name="pipeline-push", daemon=True).start()
    try:
        await done.wait()
    finally:
        deadline.stop.set()
    if failure:
        raise failure[0]
    return outcome[0]


async def bounded(work: Callable[[], T], deadline: Deadline, seconds: float, registry: str) -> T:
    """`work()` (a registry's) in a thread of its own, stopped after `seconds`."""
    try:
        with anyio.fail_after(seconds):
            return await in_thread(work, deadline)
    except TimeoutError:
        raise RegistryError(
            f"registry {registry} did not finish within {seconds:g}s: is it up, is the "
            "address right? (--push-timeout)"
        ) from None
