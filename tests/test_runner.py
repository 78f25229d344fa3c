"""pipeline.runner, against the real engine, the test bed's registries and its Docker: the
tarball, the load, the publish (with credentials as a Dagger secret), two platforms, and a
JSON report that agrees with the summary and with skopeo. Without the engine: the retry when
a file changes during the source upload, with the error the engine gives then."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import anyio
import dagger
import gql
import pytest
from dagger._exceptions import QueryErrorValue

from pipeline import runner
from pipeline.settings import Settings, Variant
from tests.conftest import ROOT, PipelineRunner, Testbed
from tests.images import file_bytes, manifests

ELF_MACHINE = {"amd64": 62, "arm64": 183}
# What the engine answered when a test's file was rewritten during the source upload.
CHANGED = (
    'failed to get snapshot: failed to snapshot: failed to sync: conflict at "stamp.txt": '
    'mod time changed from "1795846671705805334" to "1795846671727578824" during sync'
)


def query_error(message: str) -> dagger.QueryError:
    return dagger.QueryError([QueryErrorValue(message)], gql.GraphQLRequest("{ container }"))


@pytest.mark.parametrize(
    ("failures", "message", "tries", "succeeds"),
    [
        (1, CHANGED, 2, True),  # changed once: read again, built
        (2, CHANGED, 3, True),
        (3, CHANGED, 3, False),  # kept changing: the third failure is the answer
        (1, "image not found", 1, False),  # any other error: at once
    ],
)
def test_uploading_reads_the_tree_again_when_a_file_changed_during_upload(
    failures: int, message: str, tries: int, succeeds: bool
) -> None:
    reloads: list[bool] = []

    async def attempt(settings: Settings) -> str:
        reloads.append(settings.reload_source)
        if len(reloads) <= failures:
            raise ExceptionGroup("build", [query_error(message)])  # as _sync_all raises it
        return "built"

    settings = Settings(Variant.MULTISTAGE)
    if succeeds:
        assert anyio.run(runner._uploading, attempt, settings) == "built"
    else:
        with pytest.raises(ExceptionGroup):
            anyio.run(runner._uploading, attempt, settings)
    assert reloads == [False] + [True] * (tries - 1)


def test_a_file_that_kept_changing_is_one_line() -> None:
    error = runner._query_failed(query_error(CHANGED), Settings(Variant.MULTISTAGE))
    assert str(error) == (
        "stamp.txt kept changing while the source was uploaded (3 tries): run again once the "
        "tree is still"
    )


@pytest.mark.engine
def test_output_is_an_oci_tarball_skopeo_reads(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    tarball, report = tmp_path / "image.tar", tmp_path / "image.json"
    ran = pipeline(
        "multistage",
        "--no-test",
        "--runtime-image",
        "busybox:1.35",
        "--output",
        str(tarball),
        "--json",
        str(report),
    )
    assert ran.returncode == 0, ran.stderr
    inspected = testbed.skopeo("inspect", f"oci-archive:{tarball}")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Architecture"] == "amd64"
    raw = testbed.skopeo("inspect", "--raw", f"oci-archive:{tarball}")
    layers = json.loads(raw.stdout)["layers"]
    image = json.loads(report.read_text())["images"][0]
    assert image["size"]["compressed"] == sum(layer["size"] for layer in layers)
    assert image["layers"] == len(layers) == len(json.loads(inspected.stdout)["Layers"])
    assert image["digest"] == "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest()
    # The summary shows what the JSON holds.
    assert image["digest"].removeprefix("sha256:")[:12] in ran.stdout
    assert "Hello World" in ran.stdout


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
def test_load_into_docker_and_run(pipeline: PipelineRunner, testbed: Testbed) -> None:
    ran = pipeline(
        "multistage",
        "--no-test",
        "--runtime-image",
        "busybox:1.35",
        "--name",
        "loadtest",
        "--no-output",
        "--load",
        "--no-run",
    )
    assert ran.returncode == 0, ran.stderr
    docker = [*testbed.docker, "-H", testbed["DOCKER_HOST"]]
    inspected = subprocess.run(
        [*docker, "image", "inspect", "loadtest:multistage"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert inspected.returncode == 0, inspected.stderr
    run = subprocess.run(
        [*docker, "run", "--rm", "loadtest:multistage"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.stdout == "Hello World\n", run.stderr


@pytest.mark.engine
def test_publish_with_credentials_pulls_back_by_digest(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    ref = f"{testbed.auth_registry}/pipeline/hello:auth"
    report = tmp_path / "r.json"
    ran = pipeline(
        "multistage",
        "--no-test",
        "--runtime-image",
        "busybox:1.35",
        "--no-output",
        "--publish",
        ref,
        "--registry-username",
        testbed["TESTBED_AUTH_USER"],
        "--registry-ca",
        testbed["TESTBED_CA"],
        "--json",
        str(report),
        extra_env={"PIPELINE_REGISTRY_PASSWORD": testbed["TESTBED_AUTH_PASSWORD"]},
    )
    assert ran.returncode == 0, ran.stderr
    published = json.loads(report.read_text())["images"][0]["published"]
    assert published.startswith(ref + "@sha256:")
    digest = published.partition("@")[2]
    by_digest = f"docker://{testbed.auth_registry}/pipeline/hello@{digest}"
    pulled = testbed.pull_with_login(by_digest, tmp_path / "pulled")
    assert pulled.returncode == 0, pulled.stderr
    password = testbed["TESTBED_AUTH_PASSWORD"]
    assert password not in ran.stdout + ran.stderr + report.read_text()


@pytest.mark.engine
def test_two_platforms_make_one_index(
    pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path
) -> None:
    tarball, report = tmp_path / "multi.tar", tmp_path / "multi.json"
    ref = f"{testbed.registry}/pipeline/hello:multi"
    ran = pipeline(
        "multistage",
        "--no-test",
        "--runtime-image",
        "scratch",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--output",
        str(tarball),
        "--publish",
        ref,
        "--json",
        str(report),
    )
    assert ran.returncode == 0, ran.stderr
    raw = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    index = json.loads(raw.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    }
    assert platforms == {"linux/amd64", "linux/arm64"}
    image = json.loads(report.read_text())["images"][0]
    assert image["published"].endswith(image["digest"]), "tarball and registry disagree"
    for manifest in manifests(tarball):
        arch = manifest["_config"]["architecture"]
        elf = file_bytes(tarball, manifest, "myapp/helloworld")
        assert elf[:4] == b"\x7fELF"
        assert int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch], arch


@pytest.mark.engine
def test_base_without_the_platform_is_refused(pipeline: PipelineRunner, tmp_path: Path) -> None:
    tarball = tmp_path / "keep.tar"
    tarball.write_bytes(b"previous good tarball")
    ran = pipeline(
        "multistage",
        "--no-test",
        "--runtime-image",
        "busybox:1.35",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--output",
        str(tarball),
    )
    assert ran.returncode == 1
    assert "no linux/arm64 image came out" in ran.stderr
    assert tarball.read_bytes() == b"previous good tarball"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tar"]


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
