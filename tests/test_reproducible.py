"""The trust features end to end, against the real engine and the test bed's registries: one
digest, and one tarball byte for byte, whatever the engine remembers (built, the engine
restarted with its state kept, on a fresh runner, and that one pruned: multistage on busybox, on the
static base, on scratch for two platforms, and builder); each image's base layers are its
base manifest's descriptors (busybox, the static base, scratch, a two-platform index, naive's
Go image), and a publish to the base's registry sends none of them; the registry's digest is
ours, a changed line changes it; `verify` passes, and names the file when an input is not
deterministic; labels, base annotations, the lock file, non-root scratch images, and the
SBOM (file and referrer); the binary's layer as pipeline.image.canonical.file_layer foresees
it is the engine's, byte for byte.

The tests of the image room without the engine (canonical gzip, normalise, diff) moved to
tests/test_canonical.py, tests/test_normalise.py and tests/test_diff.py, their fixed layouts
to tests/layouts.py, when pipeline/image/reproducible.py was split in three."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from pipeline.image import canonical
from pipeline.image.oci import read_image
from tests.conftest import (
    ROOT,
    PipelineRunner,
    Testbed,
    ahead_of,
    ended,
    go_images,
    registry_digest,
    start_fresh_runner,
    stop_fresh_runner,
)
from tests.layouts import blob, layer_digests, member

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "go-src", copy)
    return copy


def restart_engine(testbed: Testbed) -> None:
    """Stop the test bed's engine and start it again with its state kept, as a shared engine
    or a laptop's restarts."""
    pid_file = Path(testbed.env.get("TESTBED_ENGINE_PID", "/nonexistent"))
    if not pid_file.is_file():
        pytest.skip("the engine is not the test bed's: cannot restart it")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    # It writes its cache's state out before it exits: that can take minutes on a busy machine.
    deadline = time.monotonic() + 600
    while not ended(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ended(pid), "the engine did not stop within 10 minutes"
    up = subprocess.run(
        [str(ROOT / "tests/testbed/up")], capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr


def build(
    pipeline: PipelineRunner, source: Path, out: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, object]:
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
        extra_env={**EPOCH, **(env or {})},
    )
    assert ran.returncode == 0, ran.stderr
    image: dict[str, object] = json.loads(report.read_text())["images"][0]
    return image


Rounds = dict[str, tuple[str, bytes]]  # what build_sequence made: name → (digest, tarball)

# What the sequence builds: multistage on busybox, on the static base, on scratch for two
# platforms, and the builder pattern (the Go image's base layers in its build image too).
SEQUENCE = {
    "busybox": ("multistage", "--runtime-image", "busybox:1.35"),
    "static": ("multistage", "--runtime-image", "127.0.0.1:5000/testbed/static:bookworm"),
    "scratch2": ("multistage", "--runtime-image", "scratch",
                 "--platform", "linux/amd64", "--platform", "linux/arm64"),
    "builder": ("builder", "--runtime-image", "busybox:1.35"),
}  # fmt: skip


def build_sequence(pipeline: PipelineRunner, source: Path, out: Path) -> Rounds:
    """Each image of SEQUENCE built into `out`, all at once (as CI jobs on one engine): its
    digest and its tarball's bytes."""
    out.mkdir()

    def one(name: str) -> tuple[str, bytes]:
        variant, *args = SEQUENCE[name]
        tarball = out / f"{name}.tar"
        ran = pipeline(
            variant, "--no-test", "--no-run", "--source", str(source), "--output", str(tarball),
            "--json", str(out / f"{name}.json"), *args, extra_env=EPOCH,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        digest = json.loads((out / f"{name}.json").read_text())["images"][0]["digest"]
        return digest, tarball.read_bytes()

    with ThreadPoolExecutor(len(SEQUENCE)) as pool:
        return dict(zip(SEQUENCE, pool.map(one, SEQUENCE), strict=True))


def prune_runner(env: dict[str, str]) -> None:
    """Empty a fresh runner's cache (its bases pulled again, their blobs with them), in a
    `dagger` process of its own: in_session would set this process's environment for the SDK
    while the tests beside it run."""
    pruned = subprocess.run(
        [env["_EXPERIMENTAL_DAGGER_CLI_BIN"], "--progress=plain", "core", "engine",
         "local-cache", "prune"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr[-2000:]


def on_a_fresh_runner(request: pytest.FixtureRequest) -> Callable[[], tuple[Rounds, Rounds]]:
    """test_one_digest's part on the fresh runner, run ahead (conftest: start_ahead): build;
    prune; build again. Its runs work in a directory of their own (their build/), apart from
    the tests beside them, which count what the repository's build/ holds."""
    engine_env: dict[str, str] = request.getfixturevalue("engine_env")
    work: Path = request.getfixturevalue("tmp_path_factory").mktemp("one-digest-runner")
    source = work / "src"
    shutil.copytree(ROOT / "go-src", source)

    def rounds() -> tuple[Rounds, Rounds]:
        try:
            runner = start_fresh_runner()["runner host"]
            env = {**engine_env, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": runner}
            pipeline = PipelineRunner(env, cwd=work)
            fresh = build_sequence(pipeline, source, work / "fresh")
            prune_runner(env)
            return fresh, build_sequence(pipeline, source, work / "pruned")
        finally:
            stop_fresh_runner()

    return rounds


@pytest.mark.engine
@pytest.mark.disruptive  # restarts the engine: second phase (conftest: _second_phase)
@pytest.mark.ahead.with_args(on_a_fresh_runner)  # a function: with_args, or it is decorated
def test_one_digest_whatever_the_engine_remembers(
    pipeline: PipelineRunner, source: Path, testbed: Testbed, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """Build; stop the engine and start it with its state kept (it has the bases' snapshots,
    not their blobs, and exports them re-tarred); build; build on a fresh runner; prune that
    one (its bases pulled again); build there again: every image's digest and tarball, byte
    for byte, the same each time. (The fresh runner's engine is pruned, not the test bed's,
    whose cache the next run of the suite finds warm.) The fresh runner's rounds run ahead,
    beside the second phase's tests on the test bed's engine (on_a_fresh_runner)."""
    first = build_sequence(pipeline, source, tmp_path / "first")
    restart_engine(testbed)
    kept = build_sequence(pipeline, source, tmp_path / "kept")
    fresh, pruned = ahead_of(request)
    for name in SEQUENCE:
        digests = [made[name][0] for made in (first, kept, pruned, fresh)]
        assert len(set(digests)) == 1, f"{name}: {digests}"
        assert first[name][1] == kept[name][1] == pruned[name][1] == fresh[name][1], name


@pytest.mark.engine
def test_same_digest_in_the_registry_and_a_changed_line_changes_it(
    pipeline: PipelineRunner, testbed: Testbed, source: Path, tmp_path: Path
) -> None:
    one = ("--runtime-image", "busybox:1.35")
    two = ("--runtime-image", "scratch", "--platform", "linux/amd64", "--platform", "linux/arm64")
    ref1, ref2 = f"{testbed.registry}/repro/one:t", f"{testbed.registry}/repro/two:t"
    a1 = build(pipeline, source, tmp_path / "a1.tar", *one, "--publish", ref1)
    a2 = build(pipeline, source, tmp_path / "a2.tar", *two, "--publish", ref2)
    assert a1["digest"] == registry_digest(testbed, ref1)
    assert a2["digest"] == registry_digest(testbed, ref2)
    assert a2["media_type"] == "application/vnd.oci.image.index.v1+json"
    greeting = source / "greeting.go"
    greeting.write_text(greeting.read_text().replace('"World"', '"world"'))
    c1 = build(pipeline, source, tmp_path / "c1.tar", *one)
    assert c1["digest"] != a1["digest"]


def base_manifest(testbed: Testbed, reference: str, platform: str) -> dict[str, Any]:
    """The base's manifest for `platform`, as its registry serves it (skopeo)."""
    found = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}")
    assert found.returncode == 0, found.stderr
    document: dict[str, Any] = json.loads(found.stdout)
    if "manifests" not in document:
        return document
    (entry,) = [
        m for m in document["manifests"]
        if f"{m['platform']['os']}/{m['platform']['architecture']}" == platform
    ]  # fmt: skip
    repository = reference.rsplit(":", 1)[0]
    return base_manifest(testbed, f"{repository}@{entry['digest']}", platform)


@pytest.mark.engine
@pytest.mark.parametrize("base", ["busybox", "static", "scratch", "two-platform", "naive"])
def test_the_base_layers_are_the_base_manifests(
    pipeline: PipelineRunner, testbed: Testbed, source: Path, tmp_path: Path, base: str,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """Each platform's image begins with its base manifest's layers, descriptor for
    descriptor (digest, size, media type); on scratch every layer is ours, the CA bundle
    and users included; naive's image is the Go image's layers and its own."""
    platforms = ["linux/amd64"]
    reference = {
        "busybox": f"{testbed.registry}/library/busybox:1.35",
        "static": testbed["TESTBED_STATIC_IMAGE"],
        "scratch": "scratch",
        "naive": f"{testbed.registry}/library/golang:1.26",
    }.get(base)
    if base == "two-platform":
        reference = request.getfixturevalue("two_platform_base")
        platforms = ["linux/amd64", "linux/arm64"]
    assert reference is not None
    runtime = {"busybox": "busybox:1.35", "naive": "busybox:1.35"}.get(base, reference)
    args = [a for p in platforms for a in ("--platform", p)]
    if base == "naive":
        ran = pipeline(
            "naive", "--no-test", "--no-run", "--source", str(source),
            "--output", str(tmp_path / "i.tar"),
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    else:
        build(pipeline, source, tmp_path / "i.tar", "--runtime-image", runtime, "--no-run", *args)
    read = {m.platform.removesuffix("/v8"): m for m in read_image(tmp_path / "i.tar").manifests}
    assert sorted(read) == platforms
    for platform, image in read.items():
        if base == "scratch":
            assert len(image.layers) == 1
            assert "etc/ssl/certs/ca-certificates.crt" in image.layers[0].files
            continue
        want = base_manifest(testbed, reference, platform)["layers"]
        got = [
            {"mediaType": la.media_type, "digest": la.digest, "size": la.compressed}
            for la in image.layers[: len(want)]
        ]
        assert got == [{k: w[k] for k in ("mediaType", "digest", "size")} for w in want]
        if base != "naive":
            assert len(image.layers) == len(want) + 1  # and one of ours: the binary


@pytest.mark.engine
def test_a_publish_to_the_bases_registry_sends_none_of_its_layers(
    pipeline: PipelineRunner, testbed: Testbed, source: Path, tmp_path: Path
) -> None:
    """On the static base (in the test bed's plain registry), a publish there mounts the
    base's layer from the base's repository: the bytes sent are the binary's layer and the
    config. The same image pushed to another registry sends the base's layer too."""
    static = testbed["TESTBED_STATIC_IMAGE"]
    ref = f"{testbed.registry}/mount/app-{time.time_ns()}:1"
    image = build(
        pipeline, source, tmp_path / "p.tar", "--runtime-image", static, "--no-run",
        "--publish", ref,
    )  # fmt: skip
    (read,) = read_image(tmp_path / "p.tar").manifests
    base, ours = read.layers[0], read.layers[1]
    config_size = len(blob(tmp_path / "p.tar", read.config_digest))
    assert image["published_bytes"] == ours.compressed + config_size
    assert base.digest == base_manifest(testbed, static, "linux/amd64")["layers"][0]["digest"]
    assert registry_digest(testbed, ref) == image["digest"]
    elsewhere = build(
        pipeline, source, tmp_path / "q.tar", "--runtime-image", static, "--no-run",
        "--publish", f"{testbed.auth_registry}/mount/app-{time.time_ns()}:1",
        "--registry-username", testbed["TESTBED_AUTH_USER"],
        "--registry-ca", testbed["TESTBED_CA"],
        env={"PIPELINE_REGISTRY_PASSWORD": testbed["TESTBED_AUTH_PASSWORD"]},
    )  # fmt: skip
    assert elsewhere["digest"] == image["digest"]
    assert elsewhere["published_bytes"] == base.compressed + ours.compressed + config_size


@pytest.mark.engine
@pytest.mark.parametrize("kind", ["debian", "busybox", "bare"])
def test_verify_passes_on_go_src(pipeline: PipelineRunner, testbed: Testbed, kind: str) -> None:
    """With each of the Go images users have (pipeline.recipe.variants asks nothing of one but
    go)."""
    ran = pipeline(
        "verify", "--go-image", go_images(testbed)[kind], "--runtime-image", "busybox:1.35"
    )
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
        # Written beside it, then renamed: written in place, the engine's copy of the tree
        # could find it cut to 0 bytes mid-write ("size changed ... during sync", CI run 19).
        while not stop.is_set():
            (source / ".stamp.txt").write_text(str(time.time_ns()))
            (source / ".stamp.txt").replace(source / "stamp.txt")
            time.sleep(0.02)

    (source / "stamp.txt").write_text(str(time.time_ns()))
    thread = threading.Thread(target=stamp, daemon=True)
    thread.start()
    yield source
    stop.set()
    thread.join()


@pytest.mark.engine
def test_verify_names_what_differs(pipeline: PipelineRunner, clock_file: Path) -> None:
    ran = pipeline("verify", "--runtime-image", "busybox:1.35", "--source", str(clock_file))
    assert ran.returncode == 1
    assert "differs: linux/amd64: layer 1 (" in ran.stderr
    assert "myapp/helloworld (content)" in ran.stderr
    assert "error: helloworld:multistage is not reproducible" in ran.stderr


@pytest.mark.engine
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


@pytest.mark.engine
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


@pytest.mark.engine
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


@pytest.mark.engine
def test_the_binary_layer_is_foreseen_from_the_binary(
    pipeline: PipelineRunner, source: Path, tmp_path: Path
) -> None:
    image = build(pipeline, source, tmp_path / "f.tar", "--runtime-image", "busybox:1.35")
    out = tmp_path / "f.tar"
    index = json.loads(member(out, "index.json"))
    top = layer_digests(out, index["manifests"][0]["digest"])[-1]
    tar = gzip.decompress(blob(out, top))  # the engine's tar, as canonical gzip keeps it
    path = f"myapp/{str(image['ref']).partition(':')[0]}"
    with tarfile.open(fileobj=io.BytesIO(tar)) as layer:
        assert [m.name for m in layer.getmembers()] == ["myapp", path]
        stream = layer.extractfile(path)
        assert stream is not None
        binary = stream.read()
    foreseen = canonical.file_layer(f"/{path}", binary, mtime=int(EPOCH["SOURCE_DATE_EPOCH"]))
    assert foreseen == tar
