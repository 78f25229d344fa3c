"""pipeline.flows.deliver (and the tarball and publish it delivers through), against the real
engine, the test bed's registries and its Docker: the tarball, the load, the publish (with
credentials as a Dagger secret), two platforms, and a JSON report that agrees with the
summary and with skopeo."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PipelineRunner, Testbed
from tests.images import file_bytes, manifests

ELF_MACHINE = {"amd64": 62, "arm64": 183}


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
    assert "is linux/amd64 only, not linux/arm64: use a multi-platform base" in ran.stderr
    assert tarball.read_bytes() == b"previous good tarball"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tar"]
