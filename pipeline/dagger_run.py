"""Whether this process is `dagger run`'s child: the one place that decides it. `dagger run`
opens a session and gives its child the session's port and token (the SDK then joins that
session instead of starting one), and shows the session in its own TUI; and the `dagger run`
above this process, which a run ends when its engine is gone. A leaf: it imports only the
errors, so the modules the CLI loads before a build may ask it."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import EngineGone, EngineUnavailable

# What `dagger run` puts in its child's environment.
SESSION_ENV = ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN")


def under_dagger_run(env: Mapping[str, str]) -> bool:
    """Whether `env` is that of `dagger run`'s child: both of SESSION_ENV set."""
    return all(env.get(key) for key in SESSION_ENV)


def dagger_run_parent() -> int | None:
    """The pid of the `dagger run` whose session this process was given, if it runs under one:
    its session is given (pipeline.dagger_run) and the parent's command line is
    `dagger ... run ...`."""
    if not under_dagger_run(os.environ):
        return None
    parent = os.getppid()
    try:
        argv = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None  # no /proc: not Linux; nothing checked, nothing signalled
    return parent if Path(os.fsdecode(argv[0])).name == "dagger" and b"run" in argv[1:] else None


def leave_dagger_run(error: EngineUnavailable) -> None:
    """After an engine lost mid-run, end the `dagger run` above us, if any: once its engine is
    gone it waits for it forever after its command has exited (seen: 588 s, until killed), and
    ends on SIGTERM. The last thing a run does: `dagger run` may be what shows our output."""
    parent = dagger_run_parent()
    if isinstance(error, EngineGone) and parent is not None:
        with contextlib.suppress(OSError):
            os.kill(parent, signal.SIGTERM)
