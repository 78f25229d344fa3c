"""pipeline.engine.watchdog against real sockets: an engine's address that stops answering ends
the run after PROBE_FAILURES probes a second apart, and one that answers keeps it going. (The
engine itself SIGKILLed or stopped mid-build, every run ending within seconds and its session
child with it: tests/test_provision.py.)"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import anyio
import pytest

from pipeline.engine import watchdog
from pipeline.engine.address import Address
from pipeline.errors import EngineGone


def _address(path: Path) -> Address:
    address = Address.parse(f"unix://{path}")
    assert address is not None
    return address


def test_an_address_that_stops_answering_is_an_engine_gone(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    address = _address(path)
    start = time.monotonic()
    with pytest.raises(EngineGone, match=f"the Dagger engine at unix://{path} went away"):
        anyio.run(watchdog.watchdog, address, None)
    took = time.monotonic() - start
    expected = watchdog.PROBE_EVERY * watchdog.PROBE_FAILURES
    assert expected <= took < expected + 2, took


def test_an_address_that_answers_keeps_the_run_going(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(16)

        async def watched() -> bool:
            with anyio.move_on_after(watchdog.PROBE_EVERY * (watchdog.PROBE_FAILURES + 1)):
                await watchdog.watchdog(_address(path), None)
            return True

        assert anyio.run(watched)
