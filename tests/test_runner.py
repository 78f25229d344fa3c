"""pipeline.runner's flows, against the real engine: a new tree builds cold and the same tree
warm, and --watch builds again on each change."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, PipelineRunner


@pytest.mark.engine
def test_cache_state_is_cold_after_a_change_and_warm_without(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    with (source / "greeting.go").open("a") as greeting:
        greeting.write(f"// {uuid.uuid4().hex}: a tree no cache has seen\n")
    states = []
    for n in range(2):
        report = tmp_path / f"run-{n}.json"
        ran = pipeline(
            "multistage",
            "--no-test",
            "--no-run",
            "--runtime-image",
            "busybox:1.35",
            "--source",
            str(source),
            "--no-output",
            "--json",
            str(report),
        )
        assert ran.returncode == 0, ran.stderr
        states.append(json.loads(report.read_text())["cache"])
    assert states == ["cold", "warm"]


@pytest.mark.engine
def test_watch_rebuilds_on_each_change(pipeline: PipelineRunner, tmp_path: Path) -> None:
    import os
    import queue
    import signal
    import threading
    import time

    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    process = subprocess.Popen(
        pipeline.command(
            "multistage",
            "--watch",
            "--no-test",
            "--runtime-image",
            "busybox:1.35",
            "--source",
            str(source),
            "--no-output",
        ),
        cwd=ROOT,
        env={**pipeline.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def wait_for(text: str, limit: float = 180) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not printed in {limit}s: {''.join(seen)}")

    try:
        wait_for("run printed: 'Hello World'")
        wait_for("watching")
        greeting = source / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"World"', '"Watcher"'))
        wait_for("run printed: 'Hello Watcher'")
        wait_for("watching")
        (source / "README.txt").write_text("not a build input")  # no rebuild for this
        greeting.write_text(greeting.read_text().replace('"Watcher"', '"World"'))
        wait_for("run printed: 'Hello World'")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 130
    assert sum("run printed:" in line for line in seen) == 3


@pytest.mark.engine
def test_a_watch_rebuild_makes_the_image_a_fresh_build_makes(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    """After the first build, --watch makes each image from the one before, its binary layer
    swapped (delivery.export's swap): byte for byte what a build of the tree makes."""
    import os
    import queue
    import signal
    import threading
    import time

    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    flags = ("--no-test", "--no-run", "--runtime-image", "busybox:1.35", "--source", str(source))
    watched = tmp_path / "watched.tar"
    process = subprocess.Popen(
        pipeline.command("multistage", "--watch", *flags, "--output", str(watched)),
        cwd=ROOT,
        env={**pipeline.env, **epoch},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stderr = process.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def next_build(limit: float = 180) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            assert not line.startswith("error:"), line
            if line.startswith("watching"):
                return
        raise AssertionError(f"no build ended within {limit}s")

    try:
        next_build()
        greeting = source / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"World"', '"Swapped"'))
        next_build()
        rebuilt = watched.read_bytes()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    fresh = tmp_path / "fresh.tar"
    ran = pipeline("multistage", *flags, "--output", str(fresh), extra_env=epoch)
    assert ran.returncode == 0, ran.stderr
    assert rebuilt == fresh.read_bytes()
