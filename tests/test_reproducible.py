"""pipeline.image.reproducible and the trust features end to end, against the real engine and the
test bed's registries: one digest, and one tarball byte for byte, whatever the engine
remembers (built, the engine restarted with its state kept, pruned, and on a fresh runner:
multistage on busybox, on the static base, on scratch for two platforms, and builder); each
image's base layers are its base manifest's descriptors (busybox, the static base, scratch,
a two-platform index, naive's Go image), and a publish to the base's registry sends none of
them; the registry's digest is ours, a changed line changes it; `verify` passes, and names
the file when an input is not deterministic; labels, base annotations, the lock file,
non-root scratch images, and the SBOM (file and referrer).

Without the engine: a fixed OCI layout made here from constant bytes normalises to a golden
digest (so the pinned compressor, not the host's zlib, makes the layer bytes), its layers are
plain gzip with a fixed header, the memo spares recompression (and so does a layer primed
before the export), an image with its last layer swapped is the image normalised with that
layer, and `differences` names what differs. A base's layers are the registry's whether the
engine exported its tar or a new one (each platform its own), and an image without them is
named layer by layer. With the engine, the binary's layer as file_layer foresees it is the
engine's, byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from pipeline.image import reproducible
from pipeline.image.oci import BaseLayers, Layer, OCIError, read_image
from pipeline.image.reproducible import GZIP_LAYER, differences, normalise
from tests.conftest import (
    ROOT,
    PipelineRunner,
    Testbed,
    go_images,
    start_fresh_runner,
    stop_fresh_runner,
)

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
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists(), "the engine did not stop within 10 minutes"
    up = subprocess.run(
        [str(ROOT / "tests/testbed/up")], capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr


def prune_engine(engine_env: dict[str, str]) -> None:
    """Empty the engine's cache: the bases are pulled again, their blobs with them."""

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


def registry_digest(testbed: Testbed, ref: str) -> str:
    raw = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    return "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest()


# What the sequence builds: multistage on busybox, on the static base, on scratch for two
# platforms, and the builder pattern (the Go image's base layers in its build image too).
SEQUENCE = {
    "busybox": ("multistage", "--runtime-image", "busybox:1.35"),
    "static": ("multistage", "--runtime-image", "127.0.0.1:5000/testbed/static:bookworm"),
    "scratch2": ("multistage", "--runtime-image", "scratch",
                 "--platform", "linux/amd64", "--platform", "linux/arm64"),
    "builder": ("builder", "--runtime-image", "busybox:1.35"),
}  # fmt: skip


def build_sequence(
    pipeline: PipelineRunner, source: Path, out: Path, env: dict[str, str] | None = None
) -> dict[str, tuple[str, bytes]]:
    """Each image of SEQUENCE built into `out`: its digest and its tarball's bytes."""
    out.mkdir()
    made = {}
    for name, (variant, *args) in SEQUENCE.items():
        tarball = out / f"{name}.tar"
        ran = pipeline(
            variant, "--no-test", "--no-run", "--source", str(source), "--output", str(tarball),
            "--json", str(out / f"{name}.json"), *args, extra_env={**EPOCH, **(env or {})},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        digest = json.loads((out / f"{name}.json").read_text())["images"][0]["digest"]
        made[name] = (digest, tarball.read_bytes())
    return made


@pytest.mark.engine
@pytest.mark.disruptive  # restarts and prunes the engine: run last (conftest)
def test_one_digest_whatever_the_engine_remembers(
    pipeline: PipelineRunner,
    engine_env: dict[str, str],
    testbed: Testbed,
    source: Path,
    tmp_path: Path,
) -> None:
    """Build; stop the engine and start it with its state kept (it has the bases' snapshots,
    not their blobs, and exports them re-tarred); build; prune; build; build on a fresh
    runner: every image's digest and tarball, byte for byte, the same each time."""
    first = build_sequence(pipeline, source, tmp_path / "first")
    restart_engine(testbed)
    kept = build_sequence(pipeline, source, tmp_path / "kept")
    prune_engine(engine_env)
    pruned = build_sequence(pipeline, source, tmp_path / "pruned")
    try:
        fresh_host = start_fresh_runner()["runner host"]
        env = {"_EXPERIMENTAL_DAGGER_RUNNER_HOST": fresh_host}
        fresh = build_sequence(pipeline, source, tmp_path / "fresh", env)
    finally:
        stop_fresh_runner()
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
        while not stop.is_set():
            (source / "stamp.txt").write_text(str(time.time_ns()))
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


# --- a fixed layout, no engine ----------------------------------------------------------

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
PLAIN_LAYER = "application/vnd.oci.image.layer.v1.tar"
GOLDEN_EPOCH = 1700000000
# The digests that the compressor makes: a new version of `deflate` (libdeflate) changes the
# layer's and so the image's. Update them only with a deliberate upgrade of it.
GOLDEN_DIFF_IDS = [  # the layers' tars: made here, the compressor has no say in them
    "sha256:1ebbf11d90c0b14fe3f3626ac87e7c1cf82abdf2c436e631bed7e3571c9b4791",
    "sha256:b7424ee050aee406635dc8afb38da411e0aff709cb0e59a01c49d64dc8ce6428",
]
GOLDEN_LAYERS = [
    "sha256:ea365d80056935da9c447b707b971b306b0cac4acaf0ef6bdb9772b100604663",
    "sha256:3801d6d813403dd67256f4320f0458ecd9c7250a41b03c6e7e4f904946742eba",
]
# Changed once on purpose: every history entry now takes the epoch, empty ones too (the
# layout's ENV entry kept the engine's time before), as the base's layers became the base's.
GOLDEN_DIGEST = "sha256:456d84cc9b44da15cb0c0a9a41679373612ae665b6eaa71e9a6ebfbcc1fb781b"


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A layer's tar, its bytes fixed by `files`: order, owner, mode and time are constants."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1234567890
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def noise(size: int) -> bytes:
    """`size` bytes that deflate cannot shrink, the same every time (a SHA-256 chain)."""
    blocks = (hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def golden_tars(binary: bytes = b"\x7fELF" + noise(150_000)) -> list[bytes]:
    """Two layers, as a small image on a base has: a base's text files, then a 'binary' (half
    noise, half repeated text: several deflate blocks, stored and compressed)."""
    base = layer_tar(
        {
            "etc/os-release": b'NAME="golden"\nID=golden\nVERSION_ID=1\n',
            "etc/motd": b"reproducible images, byte for byte\n" * 50,
        }
    )
    app = layer_tar({"myapp/helloworld": binary + b"Hello World\x00" * 12_000})
    return [base, app]


def as_engine_sends(tar: bytes, how: str) -> tuple[str, bytes]:
    """A layer as an engine may export it: uncompressed, or gzip of some level, time, name."""
    if how == "tar":
        return PLAIN_LAYER, tar
    level, mtime = {"gzip -1": (1, 1712345678), "gzip -9": (9, 1)}[how]
    buffer = io.BytesIO()
    with gzip.GzipFile("layer.tar", "wb", level, buffer, mtime) as out:
        out.write(tar)
    return GZIP_LAYER, buffer.getvalue()


def _put(blobs: dict[str, bytes], media_type: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _image(
    blobs: dict[str, bytes], layers: list[tuple[str, bytes]], tars: list[bytes], arch: str
) -> dict[str, object]:
    """One platform's image as Dagger exports it, its blobs put in `blobs`: the layers (media
    type, blob) whose tars are `tars`, a config with engine times and history texts, a
    manifest; the manifest's descriptor."""
    stored = "2024-05-06T07:08:09.123456789Z"
    config = {
        "created": stored,
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/myapp/helloworld"], "WorkingDir": "/myapp"},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in tars],
        },
        "history": [
            {"created": stored, "created_by": "import image layer"},
            {"created": stored, "created_by": "ENV PATH", "empty_layer": True},
            {"created": stored, "created_by": "rehydrated persisted snapshot"},
        ],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _put(blobs, CONFIG, json.dumps(config, indent=2).encode()),
        "layers": [_put(blobs, media_type, blob) for media_type, blob in layers],
    }
    descriptor = _put(blobs, MANIFEST, json.dumps(manifest, indent=2).encode())
    return {**descriptor, "platform": {"os": "linux", "architecture": arch}}


def _write(path: Path, blobs: dict[str, bytes], top: dict[str, object]) -> Path:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in blobs.items()},
    }
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_layout(path: Path, layers: list[tuple[str, bytes]], tars: list[bytes]) -> Path:
    """An image tarball as Dagger exports one: the layers (media type, blob) whose tars are
    `tars`, a config with engine times and history texts, a manifest, an index."""
    blobs: dict[str, bytes] = {}
    top = _image(blobs, layers, tars, "amd64")
    del top["platform"]
    return _write(path, blobs, top)


def write_index(path: Path, firsts: dict[str, bytes], app: bytes) -> Path:
    """An image of several platforms as Dagger exports one: for each architecture, an image
    whose layers are its first tar and `app` (uncompressed), all listed in one index."""
    blobs: dict[str, bytes] = {}
    images = [
        _image(blobs, [(PLAIN_LAYER, first), (PLAIN_LAYER, app)], [first, app], arch)
        for arch, first in firsts.items()
    ]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images,
    }
    top = _put(blobs, "application/vnd.oci.image.index.v1+json", json.dumps(index).encode())
    return _write(path, blobs, top)


def exported(tmp_path: Path, hows: tuple[str, str] = ("gzip -1", "tar")) -> Path:
    """The golden image as an engine might export it, each layer compressed as `hows` says."""
    tars = golden_tars()
    layers = [as_engine_sends(tar, how) for tar, how in zip(tars, hows, strict=True)]
    return write_layout(tmp_path / f"exported-{'-'.join(hows)}.tar", layers, tars)


def member(image: Path, name: str) -> bytes:
    with tarfile.open(image) as tar:
        stream = tar.extractfile(name)
        assert stream is not None
        return stream.read()


def blob(image: Path, digest: str) -> bytes:
    return member(image, "blobs/sha256/" + digest.removeprefix("sha256:"))


def layer_digests(image: Path, digest: str) -> list[str]:
    return [layer["digest"] for layer in json.loads(blob(image, digest))["layers"]]


@pytest.mark.parametrize(
    "hows", [("gzip -1", "tar"), ("tar", "gzip -9"), ("gzip -9", "gzip -1")], ids="/".join
)
def test_golden_digest(tmp_path: Path, hows: tuple[str, str]) -> None:
    """However the engine compressed the layers, the normalised image has the committed digest:
    the same on every host, since the pinned libdeflate makes the layer bytes."""
    assert ["sha256:" + hashlib.sha256(t).hexdigest() for t in golden_tars()] == GOLDEN_DIFF_IDS
    out = tmp_path / "image.tar"
    digest = normalise(exported(tmp_path, hows), out, epoch=GOLDEN_EPOCH, ref_name="golden:1")
    assert layer_digests(out, digest) == GOLDEN_LAYERS
    assert digest == GOLDEN_DIGEST


def test_layers_are_plain_gzip_with_a_fixed_header(tmp_path: Path) -> None:
    out = tmp_path / "image.tar"
    digest = normalise(exported(tmp_path), out, epoch=GOLDEN_EPOCH, ref_name="golden:1")
    manifest = json.loads(blob(out, digest))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [GZIP_LAYER, GZIP_LAYER]
    for layer, tar in zip(manifest["layers"], golden_tars(), strict=True):
        data = blob(out, layer["digest"])
        assert layer["size"] == len(data)
        # magic, deflate, no flags (no name), mtime 0, no extra flags, OS 255 (unknown)
        assert data[:10] == bytes.fromhex("1f8b 0800 00000000 00ff")
        assert struct.unpack("<II", data[-8:]) == (zlib.crc32(tar), len(tar))
        assert gzip.decompress(data) == tar
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            assert unzipped.read() == tar
            assert unzipped.mtime == 0
        assert len(data) < len(tar)
    config = json.loads(blob(out, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == GOLDEN_DIFF_IDS


def test_the_memo_spares_recompression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = exported(tmp_path)
    memo: dict[str, tuple[bytes, str]] = {}
    first = normalise(source, tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    index = json.loads(member(source, "index.json"))
    assert sorted(memo) == sorted(layer_digests(source, index["manifests"][0]["digest"]))

    def fail(data: bytes) -> tuple[bytes, str]:
        raise AssertionError("recompressed a layer the memo has")

    monkeypatch.setattr(reproducible, "_canonical_layer", fail)
    again = normalise(source, tmp_path / "b.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    assert again == first
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_a_primed_layer_is_not_compressed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = exported(tmp_path, ("tar", "tar"))  # as the pipeline asks the engine: uncompressed
    unprimed = normalise(source, tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1")
    memo: dict[str, tuple[bytes, str]] = {}
    for tar in golden_tars():
        reproducible.prime(memo, tar)
    index = json.loads(member(source, "index.json"))
    assert sorted(memo) == sorted(layer_digests(source, index["manifests"][0]["digest"]))

    def fail(data: bytes) -> tuple[bytes, str]:
        raise AssertionError("compressed a layer that was primed")

    monkeypatch.setattr(reproducible, "_canonical_layer", fail)
    primed = normalise(source, tmp_path / "b.tar", epoch=GOLDEN_EPOCH, ref_name="g:1", memo=memo)
    assert primed == unprimed
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_swapping_the_last_layer_is_normalising_the_image_that_holds_it(tmp_path: Path) -> None:
    base, app = golden_tars()
    other = golden_tars(binary=b"\x7fELF" + noise(120_000))[1]
    digests = {}
    for name, tars in (("a", [base, app]), ("b", [base, other])):
        layers = [
            as_engine_sends(tar, how) for tar, how in zip(tars, ("gzip -1", "tar"), strict=True)
        ]
        source = write_layout(tmp_path / f"exported-{name}.tar", layers, tars)
        out = tmp_path / f"{name}.tar"
        digests[name] = normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1")
    swapped = reproducible.swap_last_layer(
        tmp_path / "a.tar", tmp_path / "swapped.tar", other, epoch=GOLDEN_EPOCH, ref_name="g:1"
    )
    assert swapped == digests["b"] != digests["a"]
    assert (tmp_path / "swapped.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


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
    foreseen = reproducible.file_layer(f"/{path}", binary, mtime=int(EPOCH["SOURCE_DATE_EPOCH"]))
    assert foreseen == tar


@pytest.mark.parametrize("hows", [("tar", "tar"), ("gzip -1", "tar")], ids=["tar", "gzip"])
def test_the_layers_recompressed_are_known_as_read_image_reads_them(
    tmp_path: Path, hows: tuple[str, str]
) -> None:
    """normalise(layers=...) gives each new layer as read_image would read it back (sizes and
    files too), so that the read-back inflates none of them; the bytes written are the same."""
    given: dict[str, Layer] = {}
    digest = normalise(
        exported(tmp_path, hows), tmp_path / "a.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
        layers=given,
    )  # fmt: skip
    assert digest == GOLDEN_DIGEST
    read = read_image(tmp_path / "a.tar")
    want = {layer.digest: layer for layer in read.manifests[0].layers}
    assert sorted(given) == sorted(want) == sorted(GOLDEN_LAYERS)
    for key, layer in want.items():
        assert given[key] == layer
        assert given[key].files == layer.files
    again = read_image(tmp_path / "a.tar", given)
    assert again == read


# --- a base's layers as its registry serves them ---------------------------------------

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BASE_HISTORY: list[dict[str, Any]] = [
    {"created": "2020-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
    {"created": "2020-01-02T03:04:06Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
     "empty_layer": True},
]  # fmt: skip


def registry_base(tmp_path: Path, tar: bytes, platform: str = "linux/amd64") -> BaseLayers:
    """The golden base layer as a registry serves it: gzip as the base's maker wrote it (not
    ours), a Docker media type, its blob a file as pipeline.registry.bases keeps it."""
    buffer = io.BytesIO()
    with gzip.GzipFile("", "wb", 9, buffer, mtime=1577934245) as out:
        out.write(tar)
    data = buffer.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / digest.removeprefix("sha256:")
    path.write_bytes(data)
    return BaseLayers(
        ref=f"127.0.0.1:5000/library/golden@{digest}",
        platform=platform,
        layers=({"mediaType": DOCKER_LAYER, "digest": digest, "size": len(data)},),
        diff_ids=("sha256:" + hashlib.sha256(tar).hexdigest(),),
        history=tuple(BASE_HISTORY),
        blobs={digest: path},
    )


def retarred(tar: bytes) -> bytes:
    """The same files in a new tar, as an engine writes a layer anew from its snapshot after
    a restart: another order, other headers (another diff_id)."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tar)) as old,
        tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as new,
    ):
        members = [(m, old.extractfile(m)) for m in old.getmembers()]
        for info, stream in sorted(members, key=lambda pair: pair[0].name):
            assert stream is not None
            info.name = f"./{info.name}"
            new.addfile(info, io.BytesIO(stream.read()))
    return buffer.getvalue()


def test_the_base_layers_are_the_registrys_whatever_the_engine_exports(tmp_path: Path) -> None:
    """An engine that still has the base's blob exports its tar; one restarted without a prune
    exports a new tar of the same files. Both normalise to one image, whose base layer is the
    registry's blob (digest, size, media type), with the base config's diff_id and history."""
    base_tar, app = golden_tars()
    again = retarred(base_tar)
    assert again != base_tar
    base = registry_base(tmp_path, base_tar)
    digests, images = [], []
    for name, first in (("kept", base_tar), ("retarred", again)):
        source = write_layout(
            tmp_path / f"{name}-export.tar", [(PLAIN_LAYER, first), (PLAIN_LAYER, app)],
            [first, app],
        )  # fmt: skip
        out = tmp_path / f"{name}.tar"
        digests.append(
            normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1", bases={"linux/amd64": base})
        )
        images.append(out)
    assert digests[0] == digests[1]
    assert images[0].read_bytes() == images[1].read_bytes()
    manifest = json.loads(blob(images[0], digests[0]))
    assert manifest["layers"][0] == base.layers[0]
    assert blob(images[0], base.layers[0]["digest"]) == base.blob(base.layers[0]["digest"])
    assert manifest["layers"][1]["digest"] == GOLDEN_LAYERS[1]  # ours: canonical, as before
    config = json.loads(blob(images[0], manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [base.diff_ids[0], GOLDEN_DIFF_IDS[1]]
    assert config["history"][:2] == BASE_HISTORY
    assert [h["created_by"] for h in config["history"][2:]] == [f"layer {GOLDEN_DIFF_IDS[1]}"]
    assert reproducible.base_mismatches(images[0], {"linux/amd64": base}) == []
    # read back as the registry would serve it: sizes from the blobs themselves
    read = read_image(images[0])
    assert read.manifests[0].layers[0].compressed == base.layers[0]["size"]


def test_an_image_without_its_bases_layers_is_named(tmp_path: Path) -> None:
    """base_mismatches (verify's check): an image normalised without the base's layers has a
    first layer that is not the base manifest's, and says how."""
    base_tar, app = golden_tars()
    base = registry_base(tmp_path, base_tar)
    source = write_layout(
        tmp_path / "export.tar", [(PLAIN_LAYER, retarred(base_tar)), (PLAIN_LAYER, app)],
        [retarred(base_tar), app],
    )  # fmt: skip
    out = tmp_path / "image.tar"
    normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1")  # no bases: the engine's tar
    (found,) = reproducible.base_mismatches(out, {"linux/amd64": base})
    assert found.startswith("linux/amd64: layer 0 (sha256:")
    assert found.endswith("its digest, size, mediaType, diff_id differ")


def test_each_platform_takes_its_own_bases_layers(tmp_path: Path) -> None:
    """An image of two platforms on a multi-platform base: each platform's image holds the
    layers of the base's manifest for that platform; one with no base for it is refused."""
    base_tar, app = golden_tars()
    arm_tar = layer_tar({"etc/os-release": b"ID=golden-arm64\n"})
    bases = {
        "linux/amd64": registry_base(tmp_path, base_tar),
        "linux/arm64": registry_base(tmp_path, arm_tar, "linux/arm64"),
    }
    source = write_index(
        tmp_path / "export.tar", {"amd64": base_tar, "arm64": retarred(arm_tar)}, app
    )
    out = tmp_path / "image.tar"
    normalise(source, out, epoch=GOLDEN_EPOCH, ref_name="g:1", bases=bases)
    assert reproducible.base_mismatches(out, bases) == []
    read = {m.platform: m for m in read_image(out).manifests}
    assert read["linux/arm64"].layers[0].digest == bases["linux/arm64"].layers[0]["digest"]
    assert read["linux/amd64"].layers[0].digest == bases["linux/amd64"].layers[0]["digest"]
    with pytest.raises(OCIError, match="no base layers for its linux/arm64 image"):
        normalise(source, tmp_path / "no.tar", epoch=GOLDEN_EPOCH, ref_name="g:1",
                  bases={"linux/amd64": bases["linux/amd64"]})  # fmt: skip


def test_differences_name_the_file_and_the_field(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{name}.tar" for name in "abc")
    normalise(exported(tmp_path), a, epoch=GOLDEN_EPOCH, ref_name="g:1")
    normalise(exported(tmp_path, ("tar", "gzip -9")), b, epoch=GOLDEN_EPOCH, ref_name="g:1")
    assert differences(a, b) == []
    tars = golden_tars(b"\x7fELF" + noise(150_001))
    changed = write_layout(tmp_path / "changed.tar", [(PLAIN_LAYER, t) for t in tars], tars)
    normalise(changed, c, epoch=GOLDEN_EPOCH + 1, ref_name="g:1")
    found = differences(a, c)
    created = "config field created: '2023-11-14T22:13:20Z' vs '2023-11-14T22:13:21Z'"
    assert f"linux/amd64: {created}" in found
    (layer,) = [f for f in found if f.startswith("linux/amd64: layer 1 (")]
    assert layer.endswith("): myapp/helloworld (size, content)")
    assert not any(f.startswith("linux/amd64: layer 0") for f in found)
