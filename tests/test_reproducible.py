"""pipeline.reproducible and the trust features end to end, against the real engine and the
test bed's registries: the same source gives the same digest after an engine restart with an
emptied cache (tarball and registry, one and two platforms), a changed line changes it;
`verify` passes, and names the file when an input is not deterministic; labels, base
annotations, the lock file, non-root scratch images, and the SBOM (file and referrer)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import dagger
import pytest
from dagger import dag
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from tests.conftest import ROOT, PipelineRunner, Testbed

pytestmark = pytest.mark.engine
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", copy)
    return copy


def restart_engine_cold(engine_env: dict[str, str], testbed: Testbed) -> None:
    """Stop the test bed's engine, start it again, and empty its cache."""
    pid_file = Path(testbed.env.get("TESTBED_ENGINE_PID", "/nonexistent"))
    if not pid_file.is_file():
        pytest.skip("the engine is not the test bed's: cannot restart it")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    # It writes its cache's state out before it exits: that can take minutes on a busy machine.
    deadline = time.monotonic() + 600
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists(), "the engine did not stop within 10 minutes"
    up = subprocess.run(
        [str(ROOT / "tests/testbed/up")], capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr

    async def prune() -> None:
        async with dagger.connection(dagger.Config(log_output=None)):
            await dag.engine().local_cache().prune()

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in engine_env.items() if "DAGGER" in k})
    try:
        anyio.run(prune)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build(pipeline: PipelineRunner, source: Path, out: Path, *args: str) -> dict[str, object]:
    report = out.with_suffix(".json")
    ran = pipeline(
        "multistage",
        "--no-test",
        "--source",
        str(source),
        "--output",
        str(out),
        "--json",
        str(report),
        *args,
        extra_env=EPOCH,
    )
    assert ran.returncode == 0, ran.stderr
    image: dict[str, object] = json.loads(report.read_text())["images"][0]
    return image


def registry_digest(testbed: Testbed, ref: str) -> str:
    raw = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    import hashlib

    return "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest()


def test_same_digest_after_a_cold_restart_and_a_changed_line_changes_it(
    pipeline: PipelineRunner,
    engine_env: dict[str, str],
    testbed: Testbed,
    source: Path,
    tmp_path: Path,
) -> None:
    one = ("--runtime-image", "busybox:1.35")
    two = ("--runtime-image", "scratch", "--platform", "linux/amd64", "--platform", "linux/arm64")
    ref1, ref2 = f"{testbed.registry}/repro/one:t", f"{testbed.registry}/repro/two:t"
    a1 = build(pipeline, source, tmp_path / "a1.tar", *one, "--publish", ref1)
    a2 = build(pipeline, source, tmp_path / "a2.tar", *two, "--publish", ref2)
    restart_engine_cold(engine_env, testbed)
    b1 = build(pipeline, source, tmp_path / "b1.tar", *one, "--publish", ref1)
    b2 = build(pipeline, source, tmp_path / "b2.tar", *two, "--publish", ref2)
    assert a1["digest"] == b1["digest"] == registry_digest(testbed, ref1)
    assert a2["digest"] == b2["digest"] == registry_digest(testbed, ref2)
    assert a2["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert (tmp_path / "a1.tar").read_bytes() == (tmp_path / "b1.tar").read_bytes()
    greeting = source / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"World"', '"world"'))
    c1 = build(pipeline, source, tmp_path / "c1.tar", *one)
    assert c1["digest"] != a1["digest"]


def test_verify_passes_on_go_src(pipeline: PipelineRunner) -> None:
    ran = pipeline("verify", "--runtime-image", "busybox:1.35")
    assert ran.returncode == 0, ran.stderr
    assert "reproducible: helloworld:multistage builds to the same digest" in ran.stdout


@pytest.fixture
def clock_file(tmp_path: Path) -> Iterator[Path]:
    """A Go program that embeds a file which a thread keeps stamping with the wall clock."""
    source = tmp_path / "clock"
    source.mkdir()
    (source / "go.mod").write_text("module example.com/clock\n\ngo 1.26\n")
    (source / "main.go").write_text(
        'package main\n\nimport (\n\t_ "embed"\n\t"fmt"\n)\n\n//go:embed stamp.txt\n'
        "var stamp string\n\nfunc main() { fmt.Println(len(stamp)) }\n"
    )
    stop = threading.Event()

    def stamp() -> None:
        while not stop.is_set():
            (source / "stamp.txt").write_text(str(time.time_ns()))
            time.sleep(0.02)

    (source / "stamp.txt").write_text(str(time.time_ns()))
    thread = threading.Thread(target=stamp, daemon=True)
    thread.start()
    yield source
    stop.set()
    thread.join()


def test_verify_names_what_differs(pipeline: PipelineRunner, clock_file: Path) -> None:
    ran = pipeline("verify", "--runtime-image", "busybox:1.35", "--source", str(clock_file))
    assert ran.returncode == 1
    assert "differs: linux/amd64: layer 1 (" in ran.stderr
    assert "myapp/helloworld (content)" in ran.stderr
    assert "error: helloworld:multistage is not reproducible" in ran.stderr


def test_labels_annotations_and_lock(
    pipeline: PipelineRunner, testbed: Testbed, source: Path, tmp_path: Path
) -> None:
    lock = tmp_path / "bases.lock"
    image = build(
        pipeline, source, tmp_path / "l.tar", "--runtime-image", "busybox:1.35", "--lock", str(lock)
    )
    inspected = json.loads(testbed.skopeo("inspect", f"oci-archive:{tmp_path / 'l.tar'}").stdout)
    labels = inspected["Labels"]
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert labels["org.opencontainers.image.title"] == "helloworld"
    assert inspected["Created"] == "2023-11-14T22:13:20Z"
    manifest = json.loads(
        testbed.skopeo("inspect", "--raw", f"oci-archive:{tmp_path / 'l.tar'}").stdout
    )
    assert (
        manifest["annotations"]["org.opencontainers.image.base.name"]
        == "docker.io/library/busybox:1.35"
    )
    assert (
        manifest["annotations"]["org.opencontainers.image.base.digest"]
        == testbed["TESTBED_BUSYBOX_DIGEST"]
    )
    locked = json.loads(lock.read_text())["images"]
    assert locked["busybox:1.35"].endswith("@" + testbed["TESTBED_BUSYBOX_DIGEST"])
    assert locked["golang:1.26"].endswith("@" + testbed["TESTBED_GOLANG_DIGEST"])
    # The lock is held to: same digest again; a lock that says otherwise fails the run.
    again = build(
        pipeline, source, tmp_path / "m.tar", "--runtime-image", "busybox:1.35", "--lock", str(lock)
    )
    assert again["digest"] == image["digest"]
    moved = {**locked, "busybox:1.35": locked["busybox:1.35"].split("@")[0] + "@sha256:" + "0" * 64}
    lock.write_text(json.dumps({"schema_version": 1, "images": moved}))
    ran = pipeline(
        "multistage",
        "--no-test",
        "--source",
        str(source),
        "--no-output",
        "--runtime-image",
        "busybox:1.35",
        "--lock",
        str(lock),
    )
    assert ran.returncode == 1
    digest = testbed["TESTBED_BUSYBOX_DIGEST"]
    assert f"busybox:1.35 now points to {digest}, but {lock} pins sha256:000" in ran.stderr


def test_scratch_runs_as_nonroot(
    pipeline: PipelineRunner, testbed: Testbed, source: Path, tmp_path: Path
) -> None:
    image = build(pipeline, source, tmp_path / "s.tar", "--runtime-image", "scratch")
    config = json.loads(
        testbed.skopeo("inspect", "--config", f"oci-archive:{tmp_path / 's.tar'}").stdout
    )
    assert config["config"]["User"] == "65532:65532"
    ran = pipeline(
        "multistage",
        "--no-test",
        "--source",
        str(source),
        "--runtime-image",
        "scratch",
        "--no-output",
        "--json",
        str(tmp_path / "run.json"),
        extra_env=EPOCH,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads((tmp_path / "run.json").read_text())["printed"] == "Hello World\n"
    assert image["digest"] == json.loads((tmp_path / "run.json").read_text())["images"][0]["digest"]
    static = build(
        pipeline, source, tmp_path / "st.tar", "--runtime-image", testbed["TESTBED_STATIC_IMAGE"]
    )
    config = json.loads(
        testbed.skopeo("inspect", "--config", f"oci-archive:{tmp_path / 'st.tar'}").stdout
    )
    assert config["config"]["User"] == "65532:65532", static
    busybox = build(pipeline, source, tmp_path / "b.tar", "--runtime-image", "busybox:1.35")
    config = json.loads(
        testbed.skopeo("inspect", "--config", f"oci-archive:{tmp_path / 'b.tar'}").stdout
    )
    assert config["config"].get("User", "") == "", busybox


def vendored(tmp_path: Path) -> Path:
    """The fixture with a dependency, vendored offline from the module cache."""
    copy = tmp_path / "withdeps"
    shutil.copytree(ROOT / "tests" / "fixtures" / "withdeps", copy)
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "mod", "vendor"], cwd=copy, env=env, check=True, capture_output=True)
    assert (copy / "vendor" / "modules.txt").is_file()
    return copy


def test_sbom_file_and_referrer(pipeline: PipelineRunner, testbed: Testbed, tmp_path: Path) -> None:
    source = vendored(tmp_path)
    ref = f"{testbed.registry}/repro/withdeps:sbom"
    first = build(
        pipeline,
        source,
        tmp_path / "w1.tar",
        "--runtime-image",
        "busybox:1.35",
        "--name",
        "withdeps",
        "--publish",
        ref,
    )
    second = build(
        pipeline,
        source,
        tmp_path / "w2.tar",
        "--runtime-image",
        "busybox:1.35",
        "--name",
        "withdeps",
    )
    sbom1, sbom2 = Path(str(first["sbom"])), Path(str(second["sbom"]))
    assert sbom1 == tmp_path / "w1.tar.spdx.json"
    assert sbom1.read_bytes() == sbom2.read_bytes()
    document = parse_file(str(sbom1))
    assert validate_full_spdx_document(document) == []
    versions = {p.name: p.version for p in document.packages}
    assert versions["github.com/google/uuid"] == "v1.6.0"
    assert versions["withdeps:multistage"] == first["digest"]
    tag = str(first["sbom_tag"])
    assert tag == str(first["digest"]).replace(":", "-")
    index = json.loads(
        testbed.skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{testbed.registry}/repro/withdeps:{tag}",
        ).stdout
    )
    (entry,) = [m for m in index["manifests"] if m.get("artifactType") == "application/spdx+json"]
    referrer = json.loads(
        testbed.skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{testbed.registry}/repro/withdeps@{entry['digest']}",
        ).stdout
    )
    assert referrer["subject"]["digest"] == first["digest"]
    layer = referrer["layers"][0]
    blob = subprocess.run(
        [
            "nsenter",
            f"--net={testbed['TESTBED_NETNS']}",
            "curl",
            "-fsS",
            f"http://{testbed.registry}/v2/repro/withdeps/blobs/{layer['digest']}",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert blob == sbom1.read_bytes()
