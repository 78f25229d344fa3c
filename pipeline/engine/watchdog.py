"""Noticing that the engine went away during a run, within seconds: the watchdog probes the
engine's address (`_EXPERIMENTAL_DAGGER_RUNNER_HOST`) every second; a unix socket or a TCP port
that refuses, or a TLS terminator that closes the connection at once (its engine behind it
gone), PROBE_FAILURES times in a row, is an engine gone. So is our session child's exit, or
the end of the `dagger run` whose session the run uses."""

from __future__ import annotations

import os

import anyio
import anyio.to_thread

from pipeline.dagger_run import dagger_run_parent
from pipeline.engine.address import Address
from pipeline.engine.provision import Child
from pipeline.errors import EngineGone

PROBE_EVERY = 1.0
PROBE_FAILURES = 3


async def watchdog(address: Address | None, child: Child | None) -> None:
    """Return never; raise EngineGone once the engine's address stops answering
    PROBE_FAILURES times in a row, our session child exits, or the `dagger run` whose
    session we use is gone (killed: it ends on SIGTERM or SIGHUP without passing it on)."""
    failures: list[str] = []
    parent = dagger_run_parent()
    while True:
        await anyio.sleep(PROBE_EVERY)
        if parent is not None and os.getppid() != parent:
            raise EngineGone(
                "the `dagger run` that held this run's session is gone: nothing was written"
            )
        if child is not None and child.returncode is not None:
            raise EngineGone(
                f"the Dagger session ended during the run (exit {child.returncode}): "
                "nothing was written; run again once the engine is back"
            )
        if address is None:
            continue
        why = await anyio.to_thread.run_sync(address.probe, abandon_on_cancel=True)
        failures = [*failures, why] if why else []
        if len(failures) >= PROBE_FAILURES:
            raise EngineGone(
                f"the Dagger engine at {address.text} went away during the run ({failures[-1]}):"
                " nothing was written; run again once it is back"
            )
