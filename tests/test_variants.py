"""pipeline.recipe.variants, against the real engine and the test bed: each variant's image runs and
prints Hello World; the naive one holds the toolchain and the source, the others only the
binary on their base; the builder pattern leaves nothing on the host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, PipelineRunner, Testbed, go_images
from tests.images import layer_files, manifests

pytestmark = pytest.mark.engine
BASE = "busybox:1.35"


def build(
    pipeline: PipelineRunner, out: Path, variant: str, *args: str, base: str = BASE
) -> tuple[dict[str, Any], Path]:
    stem = f"{variant}-{base.replace(':', '-')}"
    tarball, report = out / f"{stem}.tar", out / f"{stem}.json"
    ran = pipeline(
        variant, "--runtime-image", base, "--output", str(tarball), "--json", str(report), *args
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(report.read_text()), tarball


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def naive(pipeline: PipelineRunner, out: Path) -> tuple[dict[str, Any], Path]:
    return build(pipeline, out, "naive")


@pytest.fixture(scope="module")
def builder(pipeline: PipelineRunner, out: Path) -> tuple[dict[str, Any], Path]:
    return build(pipeline, out, "builder", "--no-test")


@pytest.fixture(scope="module")
def multistage(pipeline: PipelineRunner, out: Path) -> tuple[dict[str, Any], Path]:
    return build(pipeline, out, "multistage", "--no-test")


@pytest.fixture(scope="module")
def scratch(pipeline: PipelineRunner, out: Path) -> tuple[dict[str, Any], Path]:
    return build(pipeline, out, "multistage", "--no-test", base="scratch")


def paths(tarball: Path) -> set[str]:
    (manifest,) = manifests(tarball)
    return {str(f["path"]) for f in layer_files(tarball, manifest)}


def test_each_variant_prints_hello_world(
    naive: tuple[dict[str, Any], Path],
    builder: tuple[dict[str, Any], Path],
    multistage: tuple[dict[str, Any], Path],
) -> None:
    for report, _ in (naive, builder, multistage):
        assert report["printed"] == "Hello World\n", report["variant"]


def test_naive_holds_the_toolchain_and_the_source(naive: tuple[dict[str, Any], Path]) -> None:
    files = paths(naive[1])
    assert "usr/local/go/bin/go" in files
    assert {"myapp/helloworld.go", "myapp/greeting.go", "myapp/helloworld"} <= files


@pytest.mark.parametrize("variant", ["builder", "multistage"])
def test_slim_images_hold_only_the_binary_on_the_base(
    variant: str, request: pytest.FixtureRequest, testbed: Testbed
) -> None:
    _, tarball = request.getfixturevalue(variant)
    (manifest,) = manifests(tarball)
    files = layer_files(tarball, manifest)
    assert not [f for f in files if str(f["path"]).endswith(".go")]
    assert not [f for f in files if str(f["path"]).startswith("usr/local/go")]
    base = testbed.skopeo(
        "inspect", "--tls-verify=false", f"docker://{testbed.registry}/library/{BASE}"
    )
    base_layers = len(json.loads(base.stdout)["Layers"])
    ours = {str(f["path"]) for f in files if int(f["layer"]) >= base_layers}
    assert ours == {"myapp/helloworld"}, ours
    assert manifest["_config"]["config"]["Entrypoint"] in (["./helloworld"], ["/myapp/helloworld"])


def test_multistage_is_100_times_smaller_than_naive(
    naive: tuple[dict[str, Any], Path], multistage: tuple[dict[str, Any], Path]
) -> None:
    big = naive[0]["images"][0]["size"]["uncompressed"]
    small = multistage[0]["images"][0]["size"]["uncompressed"]
    assert big / small >= 100, f"naive {big} / multistage {small} = {big / small:.1f}, want >= 100"


SCRATCH_EXTRAS = {"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"}


def test_scratch_is_within_5_percent_of_its_files(scratch: tuple[dict[str, Any], Path]) -> None:
    """On scratch: the binary, and only what a program without a base still needs (users,
    the CA bundle), within 5 %. (The binary alone was the target before those came in.)"""
    report, tarball = scratch
    (manifest,) = manifests(tarball)
    files = {str(f["path"]): int(f["size"]) for f in layer_files(tarball, manifest)}
    assert set(files) == {"myapp/helloworld", *SCRATCH_EXTRAS}
    size = report["images"][0]["size"]["uncompressed"]
    assert report["printed"] == "Hello World\n"
    assert size <= 1.05 * sum(files.values()), f"image {size} vs its files {files}"


def test_builder_image_is_a_listed_output(builder: tuple[dict[str, Any], Path], out: Path) -> None:
    report, _ = builder
    roles = {image["role"]: image for image in report["images"]}
    assert set(roles) == {"image", "builder"}
    assert roles["builder"]["ref"] == "helloworld-build:latest"
    assert Path(roles["builder"]["output"]) == out / "helloworld-build.tar"
    assert (out / "helloworld-build.tar").is_file()
    assert roles["builder"]["size"]["uncompressed"] > 100 * roles["image"]["size"]["uncompressed"]


def _host_files() -> set[Path]:
    return {p for p in (ROOT / "build").rglob("*")} | {p for p in (ROOT / "go-src").rglob("*")}


@pytest.mark.alone
def test_builder_leaves_no_host_file_on_success(pipeline: PipelineRunner, tmp_path: Path) -> None:
    before = _host_files()
    ran = pipeline("builder", "--no-test", "--runtime-image", BASE, "--no-output", "--no-run")
    assert ran.returncode == 0, ran.stderr
    assert _host_files() == before


@pytest.mark.alone
def test_builder_leaves_no_host_file_on_failure(pipeline: PipelineRunner, testbed: Testbed) -> None:
    """The binary reaches the host, then the runtime base cannot be pulled."""
    before = _host_files()
    missing = f"{testbed.registry}/nope/missing:1"
    ran = pipeline("builder", "--no-test", "--runtime-image", missing, "--no-output")
    assert ran.returncode == 1
    assert "missing" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert _host_files() == before


def test_naive_refuses_foreign_platforms(pipeline: PipelineRunner) -> None:
    ran = pipeline("naive", "--platform", "linux/arm64", "--no-output")
    assert ran.returncode == 2
    assert "runs only on the engine's platform" in ran.stderr


@pytest.mark.parametrize("kind", ["busybox", "bare"])
def test_every_variant_runs_on_a_small_go_image(
    pipeline: PipelineRunner, testbed: Testbed, kind: str
) -> None:
    """A Go image with busybox's tools, or with no shell at all: the pipeline asks nothing of
    it but `go` (the Debian image is every other test's)."""
    image = go_images(testbed)[kind]
    for variant in ("naive", "builder", "multistage"):
        ran = pipeline(variant, "--go-image", image, "--runtime-image", BASE, "--no-output")
        assert ran.returncode == 0, f"{variant}: {ran.stderr}"
        assert "run printed: 'Hello World'" in ran.stdout, variant
        assert "Traceback" not in ran.stderr, variant
