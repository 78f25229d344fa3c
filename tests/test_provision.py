"""pipeline.engine.provision: a run pointed at no engine says so in one line, at once. Against
the test bed's engine, the faults of a shared engine: the engine killed (SIGKILL) or stopped
(SIGTERM) mid-build ends every run within 30 s with one line and nothing half-written, and the
next run after a restart builds. (One client killed mid-build while the others finish is the
fault pass of `python -m bench load`, which tests/test_bench_load.py runs against the engine:
it was here too, and the bench's check now also waits for the killed client's session child.)

The engine tests here stop the test bed's engine and start it again (tests/testbed/up), or kill
a fresh runner's (a killed engine wipes its cache at its next start)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    DoomedEngine,
    PipelineRunner,
    Testbed,
    ended,
    engine_pid,
    go_tests,
    started,
)

SLOW_TEST = """package main

import (
	"testing"
	"time"
)

// A test that keeps the build busy long enough to pull the engine out from under it.
func TestTakesItsTime(t *testing.T) { time.Sleep(90 * time.Second) }
"""


def test_no_engine_at_the_address_is_one_line_at_once(tmp_path: Path) -> None:
    cli = shutil.which("dagger")
    if cli is None:
        pytest.skip("the dagger CLI is not installed: the SDK's own provisioning answers then")
    env = {
        **os.environ,
        "_EXPERIMENTAL_DAGGER_RUNNER_HOST": f"unix://{tmp_path}/nothing.sock",
        "_EXPERIMENTAL_DAGGER_CLI_BIN": cli,
    }
    env.pop("DAGGER_SESSION_PORT", None)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "multistage", "--no-output"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: no Dagger engine at unix://{tmp_path}/nothing.sock (No such file or directory)"
    ]
    assert time.monotonic() - start < 10


@pytest.mark.engine
@pytest.mark.parametrize(
    ("client", "says"),
    [
        ("other CA", "it does not trust the CA of this client's certificate"),
        ("no certificate", "it wants a client certificate"),
    ],
)
def test_a_refused_client_is_told_in_one_line_within_seconds(
    pipeline: PipelineRunner, testbed: Testbed, client: str, says: str
) -> None:
    """The dagger CLI retries a refused certificate for 10 minutes, saying only
    `connecting to engine`: the TLS handshake is tried first, and its refusal named."""
    if "TESTBED_ENGINE_TLS" not in testbed.env:
        pytest.skip("the test bed has no TLS terminator in front of its engine")
    host = f"tls://{testbed['TESTBED_ENGINE_TLS']}?ca_path={testbed['TESTBED_CA']}"
    if client == "other CA":
        host += f"&cert_path={testbed['TESTBED_OTHER_CA_CLIENT_CERT']}"
        host += f"&key_path={testbed['TESTBED_OTHER_CA_CLIENT_KEY']}"
    start = time.monotonic()
    ran = pipeline(
        "multistage", "--no-output", extra_env={"_EXPERIMENTAL_DAGGER_RUNNER_HOST": host},
        timeout=120,
    )  # fmt: skip
    took = time.monotonic() - start
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith(f"error: no Dagger engine at {host} ({says}"), lines[0]
    assert took < 10, f"{took:.1f}s"


# --- faults against the test bed's engine ------------------------------------------------


def _slow_tree(tmp_path: Path, name: str) -> Path:
    source = tmp_path / name
    shutil.copytree(ROOT / "go-src", source)
    (source / "slow_test.go").write_text(SLOW_TEST + f"\n// {uuid.uuid4().hex}\n")
    return source


def _start(
    children: contextlib.ExitStack, pipeline: PipelineRunner, source: Path, output: Path
) -> subprocess.Popen[str]:
    return children.enter_context(started(
        pipeline.command("multistage", "--source", str(source), "--output", str(output),
                         "--runtime-image", "busybox:1.35", "--quiet"),
        cwd=ROOT, env={**pipeline.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ))  # fmt: skip


def _sessions_of(pid: int) -> list[int]:
    """The `dagger session` processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"session" in command:
            found.append(int(entry.name))
    return found


def _busy(runs: list[subprocess.Popen[str]], before: set[int]) -> None:
    """Wait until every run is inside its slow go test (its session up, its test started:
    as many Go tests running as runs, besides those running `before`), within 120 s."""
    deadline = time.monotonic() + 120
    while len(go_tests() - before) < len(runs):
        for run in runs:
            assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the runs never reached their go test"
        time.sleep(0.2)
    for run in runs:
        assert run.poll() is None, run.communicate()
        assert _sessions_of(run.pid), "no session child: the run has not connected"


@pytest.mark.engine
@pytest.mark.parametrize(
    "how",
    [
        # SIGKILLed, an engine wipes its cache at its next start: a fresh runner's is killed.
        pytest.param(
            signal.SIGKILL, id="SIGKILL", marks=[pytest.mark.disruptive, pytest.mark.runner]
        ),
        # Stopped gracefully, it keeps its cache: the test bed's own, started again after.
        pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.restarts),
    ],
)
def test_the_engine_gone_mid_build_ends_every_run_within_30s(
    testbed: Testbed,
    tmp_path: Path,
    children: contextlib.ExitStack,
    request: pytest.FixtureRequest,
    how: int,
) -> None:
    if how == signal.SIGKILL:
        doomed: DoomedEngine = request.getfixturevalue("doomed_engine")
        pipeline, pid = doomed.pipeline, doomed.pid
    else:
        request.getfixturevalue("engine_back")
        pipeline, pid = request.getfixturevalue("pipeline"), engine_pid(testbed)
    before = go_tests()
    runs = [
        _start(
            children, pipeline, _slow_tree(tmp_path, f"src{n}"), tmp_path / f"out{n}" / "image.tar"
        )
        for n in range(2)
    ]
    _busy(runs, before)
    os.kill(pid, how)
    stopped = time.monotonic()
    for n, run in enumerate(runs):
        _, stderr = run.communicate(timeout=60)
        took = time.monotonic() - stopped
        assert run.returncode == 1, stderr
        assert took < 30, f"run {n} took {took:.1f}s to end after the engine went"
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert "Dagger" in lines[0], lines[0]
        assert "Traceback" not in stderr
        # Nothing half-written: no tarball, no temporary file beside it.
        out = tmp_path / f"out{n}"
        written = list(out.glob("*")) if out.exists() else []
        assert written == [], written
        assert _sessions_of(run.pid) == []


@pytest.mark.engine
def test_after_a_restart_the_next_run_builds(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path, engine_back: None
) -> None:
    os.kill(engine_pid(testbed), signal.SIGTERM)
    time.sleep(1)
    down = pipeline("multistage", "--no-test", "--no-output", timeout=120)
    assert down.returncode == 1
    host = pipeline.env["_EXPERIMENTAL_DAGGER_RUNNER_HOST"]  # unix://, or tls:// to stunnel
    assert down.stderr.strip().startswith(f"error: no Dagger engine at {host} ("), down.stderr
    pid = engine_pid(testbed)
    while not ended(pid):
        time.sleep(0.5)
    up = subprocess.run(
        [str(ROOT / "tests/testbed/up")], capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr[-2000:]
    again = pipeline("multistage", "--no-test", "--output", str(tmp_path / "image.tar"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "image.tar").is_file()
