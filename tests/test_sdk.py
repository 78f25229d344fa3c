"""pipeline.engine.sdk: the Dagger SDK is imported without its runtime checks, the environment is
left as it was; its telemetry only where someone sees its traces. (These tests moved here from
tests/test_launch.py with the functions.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("before", [None, "2"])
def test_the_sdk_is_imported_without_runtime_checks_and_the_environment_kept(
    before: str | None,
) -> None:
    """beartype wraps each SDK method (`__wrapped__`) unless PYTHONOPTIMIZE is set as it
    decorates; sdk_checks_off sets it for the import only."""
    code = (
        "import os\n"
        "from pipeline.engine.sdk import sdk_checks_off\n"
        "with sdk_checks_off():\n"
        "    import dagger\n"
        "print(hasattr(dagger.Container.from_, '__wrapped__'), os.environ.get('PYTHONOPTIMIZE'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
    if before is not None:
        env["PYTHONOPTIMIZE"] = before
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == ["False", str(before)], done.stderr
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dagger; print(hasattr(dagger.Container.from_, '__wrapped__'))",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.stdout.strip() == "True", "without it the SDK's methods are wrapped"


@pytest.mark.parametrize(
    ("extra", "traced"),
    [
        ({}, False),
        ({"TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"DAGGER_SESSION_PORT": "1234", "DAGGER_SESSION_TOKEN": "t"}, True),  # `dagger run`
    ],
    ids=["nothing set", "TRACEPARENT", "OTEL_*", "dagger run"],
)
def test_the_sdk_is_imported_without_telemetry_only_where_no_one_sees_traces(
    extra: dict[str, str], traced: bool
) -> None:
    """sdk_lean: no module runtime ever, and the SDK's telemetry only where someone sees its
    traces; the SDK works either way (its connect calls telemetry.initialize()); sys.modules
    keeps no stand-in."""
    code = (
        "import os, sys\n"
        "from pipeline.engine.sdk import sdk_checks_off, sdk_lean\n"
        "with sdk_checks_off(), sdk_lean(os.environ):\n"
        "    import dagger\n"
        "from dagger.client import _session\n"
        "_session.telemetry.initialize()  # what the SDK's connect calls\n"
        "print('opentelemetry.sdk' in sys.modules, 'dagger.mod' in sys.modules,\n"
        "      'dagger.telemetry' in sys.modules, 'opentelemetry.propagate' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DAGGER_SESSION"))}
    env.pop("TRACEPARENT", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Traced: the real telemetry imported (and its modules kept); else none of it.
    assert done.stdout.split() == [str(traced), "False", str(traced), str(traced)], done.stdout
