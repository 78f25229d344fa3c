"""bench/shared/engine.py: (against the engine) the probe, `python -m bench.shared.engine probe`,
times the fixed costs of a session: import dagger, connect, upload the source, resolve the bases,
close."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.bench_fixtures import ROOT


@pytest.mark.engine
def test_engine_probe_times_the_fixed_costs(engine_env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.shared.engine",
            "probe",
            "go-src",
            ".",
            "golang:1.26",
            "busybox:1.35",
        ],
        cwd=ROOT,
        env=engine_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    want = {"import_dagger", "connect", "upload", "resolve_bases", "close"}
    assert set(probe["seconds"]) == want
    assert all(seconds > 0 for seconds in probe["seconds"].values())
    assert probe["engine_version"].startswith("v")
