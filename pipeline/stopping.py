"""How a run is stopped from outside: SIGINT (Ctrl-C; a CI cancel, first), SIGTERM (a CI
cancel, `kill`, `dagger run` passing a Ctrl-C on), SIGHUP (a closed terminal).

All three do what Ctrl-C does: the run's work is cancelled (the session closed and its child
ended, temporary files and directories removed, pushes told to stop), then the CLI says so in
one line and exits 128 + the signal's number (130, 143, 129). A second signal ends the
process at once: what was registered with `at_once` is done (children killed, temporary
directories removed), then it exits with the same code, the cleanup of the first left where it
was. A second signal within ECHO seconds of the first is the same stop said twice (a
terminal's Ctrl-C reaches `dagger run` too, which passes it on as SIGTERM) and does nothing,
but for naming it: a SIGINT among the two is Ctrl-C's, the cause, whichever came first (the
SIGTERM passed on can overtake the terminal's own SIGINT).

The handlers are installed explicitly, SIGINT's too: a process started in the background by a
non-interactive shell inherits SIGINT ignored, and Python would then never raise
KeyboardInterrupt.

Only the main thread gets signals, between two bytecodes; inside the event loop (`cancellable`)
the handler asks the loop to cancel the work, as asyncio's own Ctrl-C handling does, and
outside it raises KeyboardInterrupt where the main thread is."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ECHO = 1.0  # seconds within which a second signal is the first one passed on, not a new one
SAID = {
    signal.SIGINT: "interrupted",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGHUP: "hung up (SIGHUP)",
}

_received: list[tuple[int, float]] = []  # the first signal and when (time.monotonic())
_cancellers: list[Callable[[], None]] = []  # how to cancel the event loop's work, while it runs
_at_once: dict[int, Callable[[], None]] = {}  # what a second signal does before it exits
_keys = iter(range(1, sys.maxsize))


def received() -> int | None:
    """The signal that asked this process to stop, if one did."""
    return _received[0][0] if _received else None


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number."""
    return 128 + signum


def said(signum: int) -> str:
    """The one line that says how the run was stopped."""
    return SAID.get(signal.Signals(signum), f"stopped ({signal.Signals(signum).name})")


def remember(action: Callable[[], None]) -> int:
    """Have a second signal do `action` (quick, never blocking) before the process exits at
    once; returns the key that forgets it."""
    key = next(_keys)
    _at_once[key] = action
    return key


def forget(key: int) -> None:
    _at_once.pop(key, None)


@contextlib.contextmanager
def at_once(action: Callable[[], None]) -> Iterator[None]:
    """`action` for a second signal to do while the block runs (see remember)."""
    key = remember(action)
    try:
        yield
    finally:
        forget(key)


def _end_now(signum: int) -> None:
    first = received() or signum
    for action in list(_at_once.values()):
        with contextlib.suppress(Exception):  # each undone as far as it goes: we are leaving
            action()
    with contextlib.suppress(OSError):
        os.write(2, f"{said(first)}, again: stopped at once\n".encode())
    os._exit(exit_code(first))


def _on_signal(signum: int, frame: FrameType | None) -> None:
    now = time.monotonic()
    if _received:
        _, when = _received[0]
        if now - when >= ECHO:
            _end_now(signum)
        elif signum == signal.SIGINT:  # Ctrl-C's, overtaken by its SIGTERM passed on
            _received[0] = (signum, when)
        return
    _received.append((signum, now))
    if _cancellers:
        _cancellers[-1]()
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP handled as this module says while the block runs (in the
    main thread); the handlers before it are put back after, and what was received forgotten."""
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _received.clear()
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


async def cancellable(work: Callable[[], Awaitable[T]]) -> T:
    """`await work()` in a cancel scope that a signal cancels (through the event loop: the
    handler must not touch the loop's state from where it interrupted it); KeyboardInterrupt
    once it is cancelled, after everything in it has cleaned up."""
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:

        def cancel() -> None:
            loop.call_soon_threadsafe(scope.cancel)

        _cancellers.append(cancel)
        try:
            return await work()
        finally:
            _cancellers.remove(cancel)
    raise KeyboardInterrupt
