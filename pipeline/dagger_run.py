"""Whether this process is `dagger run`'s child: the one place that decides it. `dagger run`
opens a session and gives its child the session's port and token (the SDK then joins that
session instead of starting one), and shows the session in its own TUI. A leaf: it imports
nothing, so the modules the CLI loads before a build may ask it."""

from __future__ import annotations

from collections.abc import Mapping

# What `dagger run` puts in its child's environment.
SESSION_ENV = ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN")


def under_dagger_run(env: Mapping[str, str]) -> bool:
    """Whether `env` is that of `dagger run`'s child: both of SESSION_ENV set."""
    return all(env.get(key) for key in SESSION_ENV)
