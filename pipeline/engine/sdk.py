"""Importing the Dagger SDK for a client run: without its runtime argument checks, and without
what a client does not use (the module runtime; telemetry where no one sees its traces).
pipeline.cli.launch imports it so once per run, while the session child connects; bench's probe
the same way."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType

from pipeline.dagger_run import under_dagger_run


@contextlib.contextmanager
def sdk_checks_off() -> Iterator[None]:
    """Around the first import of the Dagger SDK: without its runtime argument checks.

    The SDK wraps each of its methods in a beartype check as it is imported, which costs
    about half a second of every run. beartype makes its decorator the identity while
    PYTHONOPTIMIZE is set when it decorates (it reads the variable then, by design), so the
    variable is set for the import only and put back. Our calls into the SDK are checked
    statically instead (mypy --strict); the engine still rejects a wrong argument.
    """
    before = os.environ.get("PYTHONOPTIMIZE")
    os.environ["PYTHONOPTIMIZE"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONOPTIMIZE"]
        else:
            os.environ["PYTHONOPTIMIZE"] = before


def _no_one_sees_traces(env: Mapping[str, str]) -> bool:
    """Whether the SDK's traces would reach no one: not under `dagger run` (its TUI shows our
    steps from them), no trace to join (TRACEPARENT), no OpenTelemetry set up (OTEL_*)."""
    return not under_dagger_run(env) and not any(
        key == "TRACEPARENT" or key.startswith("OTEL_") for key in env
    )


class _Untraced(ModuleType):
    """What the SDK's `dagger.telemetry` does where nothing is configured: nothing."""

    @staticmethod
    def initialize(**_: object) -> None:
        return None

    @staticmethod
    def shutdown() -> None:
        return None

    @staticmethod
    def inject(*_: object, **__: object) -> None:  # opentelemetry.propagate's, ditto
        return None


@contextlib.contextmanager
def sdk_lean(env: Mapping[str, str]) -> Iterator[None]:
    """Around the first import of the Dagger SDK: without what a client run does not use.

    - `dagger.mod` (the module runtime, only inside a Dagger module's container): the SDK
      imports it only if it is there, so it is marked absent (None in sys.modules);
    - where no one sees the SDK's traces (_no_one_sees_traces), its telemetry: with neither
      TRACEPARENT nor OTEL_* set, `dagger.telemetry.initialize()` configures nothing and
      `opentelemetry.propagate.inject` adds no header, yet importing them loads the
      OpenTelemetry SDK (about 0.1 s). Both are stood in for by what they do then: nothing.

    The stand-ins leave sys.modules after the import (the SDK keeps its references)."""
    absent: dict[str, ModuleType | None] = {"dagger.mod": None}
    if _no_one_sees_traces(env):
        absent["dagger.telemetry"] = _Untraced("dagger.telemetry")
        absent["opentelemetry.propagate"] = _Untraced("opentelemetry.propagate")
    fresh = [name for name in absent if name not in sys.modules]
    for name in fresh:
        sys.modules[name] = absent[name]  # type: ignore[assignment]  # None: "not there"
    try:
        yield
    finally:
        for name in fresh:
            if sys.modules.get(name) is absent[name]:
                del sys.modules[name]
