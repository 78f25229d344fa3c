"""pipeline.flows.run's flows, against the real engine: a new tree builds cold and the same tree
warm, and --watch builds again on each change."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, PipelineRunner, Testbed, go_images, started


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


class _Watching:
    """A `pipeline multistage --watch` process, its output (stdout with stderr, or stderr
    alone) read line by line in a thread; stop() interrupts it as Ctrl-C does."""

    def __init__(self, process: subprocess.Popen[str], *, merged: bool) -> None:
        self.process = process
        stream = self.process.stdout if merged else self.process.stderr
        assert stream is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, found: Callable[[str], bool], what: str, limit: float = 180) -> None:
        """Read lines until one is `found`; fail after `limit` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if found(line):
                return
        raise AssertionError(f"{what} not printed in {limit}s: {''.join(self.seen)}")

    def wait_for_text(self, text: str) -> None:
        """Read lines until one holds `text`."""
        self.wait_for(lambda line: text in line, repr(text))

    def stop(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def _watching(
    pipeline: PipelineRunner, args: list[str], env: dict[str, str], *, merged: bool
) -> Iterator[_Watching]:
    """The --watch process while the block runs (SIGINT at its default; it and its group
    killed on the way out, if a failure left them)."""
    with started(
        pipeline.command("multistage", "--watch", *args),
        cwd=ROOT,
        env={**pipeline.env, **env},
        stdout=subprocess.PIPE if merged else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
    ) as process:
        yield _Watching(process, merged=merged)


@pytest.mark.engine
def test_watch_rebuilds_on_each_change(pipeline: PipelineRunner, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    args = ["--no-test", "--runtime-image", "busybox:1.35", "--source", str(source), "--no-output"]
    with _watching(pipeline, args, {"COLUMNS": "200"}, merged=True) as watch:
        watch.wait_for_text("run printed: 'Hello World'")
        watch.wait_for_text("watching")
        greeting = source / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"World"', '"Watcher"'))
        watch.wait_for_text("run printed: 'Hello Watcher'")
        watch.wait_for_text("watching")
        (source / "README.txt").write_text("not a build input")  # no rebuild for this
        greeting.write_text(greeting.read_text().replace('"Watcher"', '"World"'))
        watch.wait_for_text("run printed: 'Hello World'")
        returncode = watch.stop()
    assert returncode == 130
    assert sum("run printed:" in line for line in watch.seen) == 3


@pytest.mark.engine
@pytest.mark.parametrize("kind", ["busybox", "bare"])
def test_watch_with_the_registry_cache_works_on_a_small_go_image(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path, kind: str
) -> None:
    """--watch on a Go image with busybox's tools or with no shell, its Go caches restored
    from what a one-shot build saved: a build, a rebuild on a change, no warning."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    ref = f"{testbed.registry}/ci/watch-{kind}-{uuid.uuid4().hex[:12]}:main"
    args = [
        "--no-test", "--go-image", go_images(testbed)[kind], "--runtime-image", "busybox:1.35",
        "--source", str(source), "--no-output",
    ]  # fmt: skip
    saved = pipeline("multistage", *args, "--no-run", "--cache-to", ref)
    assert saved.returncode == 0, saved.stderr
    assert "warning:" not in saved.stderr
    args += ["--cache-from", ref]
    with _watching(pipeline, args, {"COLUMNS": "200"}, merged=True) as watch:
        watch.wait_for_text("run printed: 'Hello World'")
        watch.wait_for_text("watching")
        greeting = source / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"World"', '"Small"'))
        watch.wait_for_text("run printed: 'Hello Small'")
        watch.wait_for_text("watching")
        returncode = watch.stop()
    assert returncode == 130
    said = "".join(watch.seen)
    assert f"go cache: started from {ref}-linux-amd64-go-" in said
    assert "warning:" not in said
    assert "exit code" not in said


@pytest.mark.engine
def test_a_watch_rebuild_makes_the_image_a_fresh_build_makes(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    """After the first build, --watch makes each image from the one before, its binary layer
    swapped (delivery.export's swap): byte for byte what a build of the tree makes."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    flags = ("--no-test", "--no-run", "--runtime-image", "busybox:1.35", "--source", str(source))
    watched = tmp_path / "watched.tar"

    def built(line: str) -> bool:
        assert not line.startswith("error:"), line
        return line.startswith("watching")

    with _watching(pipeline, [*flags, "--output", str(watched)], epoch, merged=False) as watch:
        watch.wait_for(built, "the end of a build")
        greeting = source / "greeting.go"
        greeting.write_text(greeting.read_text().replace('"World"', '"Swapped"'))
        watch.wait_for(built, "the end of a build")
        rebuilt = watched.read_bytes()
        assert watch.stop() == 130
    fresh = tmp_path / "fresh.tar"
    ran = pipeline("multistage", *flags, "--output", str(fresh), extra_env=epoch)
    assert ran.returncode == 0, ran.stderr
    assert rebuilt == fresh.read_bytes()


@pytest.mark.engine
def test_one_image_failing_fails_the_run_and_the_others_are_reported(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    """Two images of a config file in one run: the one that compiles is delivered and shown,
    the other's compiler error is shown under its name, and the run exits 1."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", source)
    for main in ("ok", "broken"):
        (source / "cmd" / main).mkdir(parents=True)
        for name in ("helloworld.go", "greeting.go"):
            shutil.copy(source / name, source / "cmd" / main / name)
    broken = source / "cmd" / "broken" / "helloworld.go"
    broken.write_text(broken.read_text() + "\nfunc broken() { undefinedName() }\n")
    (source / "pipeline.toml").write_text(
        '[images.ok]\npackage = "./cmd/ok"\n[images.broken]\npackage = "./cmd/broken"\n'
    )
    report = tmp_path / "run.json"
    ran = pipeline(
        "multistage", "--source", str(source), "--no-test", "--no-output", "--json", str(report)
    )
    assert ran.returncode == 1, ran.stderr
    assert "ok:multistage" in ran.stdout
    assert "run printed: 'Hello World'" in ran.stdout
    assert "undefined: undefinedName" in ran.stderr
    assert "error: broken:multistage: `go build" in ran.stderr
    assert "Traceback" not in ran.stderr
    document = json.loads(report.read_text())
    assert [r["images"][0]["ref"] for r in document["runs"]] == ["ok:multistage"]
    assert [f["image"] for f in document["failed"]] == ["broken:multistage"]


def test_images_of_one_source_and_build_settings_are_built_together() -> None:
    """One `go build` for the multistage images that share everything it reads, where their
    binaries' names differ; an image with other settings, `.` or a name taken builds alone."""
    from pipeline.flows.run import built_together
    from pipeline.recipe.source import SourceTree
    from pipeline.settings import GoBuild, Settings, Variant

    def image(
        package: str, *, variant: Variant = Variant.MULTISTAGE, tags: tuple[str, ...] = ()
    ) -> tuple[Settings, SourceTree]:
        settings = Settings(
            variant=variant, name=package.rsplit("/", 1)[-1], go_build=GoBuild(tags=tags)
        )
        return settings, SourceTree(ROOT, package, module=True, vendored=False, include=())

    jobs = [
        image("./cmd/api"),
        image("./cmd/worker"),
        image("./cmd/debug", tags=("debug",)),
        image("."),
        image("./tools/api"),
        image("./cmd/naive", variant=Variant.NAIVE),
    ]
    got = built_together([j for j, _ in jobs], [t for _, t in jobs])
    assert got == [(), (), (), (), (), ()], "two ./…/api binaries: the group is split"
    got = built_together([j for j, _ in jobs[:2]], [t for _, t in jobs[:2]])
    assert got == [("./cmd/api", "./cmd/worker")] * 2
    got = built_together([j for j, _ in jobs[:4]], [t for _, t in jobs[:4]])
    assert got == [("./cmd/api", "./cmd/worker")] * 2 + [(), ()]
