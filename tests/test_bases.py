"""pipeline.registry.bases against the test bed's real registry: a base's layers are its manifest's
descriptors and its registry's blobs (compared with what skopeo reads), read through the
mirror the engine pulls docker.io through, kept on this machine and then read with no
request (a kept file that changed is fetched again); each platform of a multi-platform base
gets its own manifest's layers, and a platform the base lacks is one line."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.cli.checks import parse_mirror
from pipeline.errors import PipelineError, RegistryError
from pipeline.refs import parse_platform
from pipeline.registry import bases
from pipeline.registry.access import Deadline
from pipeline.settings import Settings, Variant
from tests.conftest import Testbed, inside_namespace

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")


@pytest.fixture
def inside(testbed: Testbed) -> Testbed:
    if not inside_namespace(testbed):
        pytest.skip("run inside the test bed's namespace: tests/testbed/exec .venv/bin/pytest")
    return testbed


def settings(testbed: Testbed) -> Settings:
    return Settings(
        variant=Variant.MULTISTAGE,
        registry_mirrors=(parse_mirror(f"docker.io={testbed.registry}"),),
    )


def raw(testbed: Testbed, reference: str) -> dict[str, object]:
    found = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}")
    assert found.returncode == 0, found.stderr
    loaded: dict[str, object] = json.loads(found.stdout)
    return loaded


def test_mirrors_map_docker_hub_names() -> None:
    mirrored = Settings(
        variant=Variant.MULTISTAGE, registry_mirrors=(parse_mirror("index.docker.io=m:5000"),)
    )
    pinned = "docker.io/library/busybox:1.35@sha256:" + "a" * 64
    assert bases.source(pinned, mirrored).text == "m:5000/library/busybox@sha256:" + "a" * 64
    elsewhere = "ghcr.io/team/base@sha256:" + "b" * 64
    assert bases.source(elsewhere, mirrored).registry == "ghcr.io"
    with pytest.raises(ValueError, match="write REGISTRY=MIRROR"):
        parse_mirror("docker.io")


def test_a_base_is_its_registrys_manifest_and_blobs(inside: Testbed, tmp_path: Path) -> None:
    pinned = f"docker.io/library/busybox:1.35@{inside['TESTBED_BUSYBOX_DIGEST']}"
    got = bases.layers_of(pinned, AMD64, settings(inside), Deadline.of(60), tmp_path)
    assert got is not None
    manifest = raw(inside, f"{inside.registry}/library/busybox@{inside['TESTBED_BUSYBOX_DIGEST']}")
    assert list(got.layers) == manifest["layers"]
    for layer in got.layers:
        data = got.blob(str(layer["digest"]))
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
        assert len(data) == layer["size"]
    # Kept: read again with no deadline (so no request can be made), the same layers.
    again = bases.layers_of(pinned, AMD64, settings(inside), None, tmp_path)
    assert again == got
    # A kept file cut short is not used: offline it is missing, online fetched anew.
    digest = str(got.layers[0]["digest"])
    kept = tmp_path / digest.removeprefix("sha256:")
    kept.write_bytes(kept.read_bytes()[:100])
    assert bases.layers_of(pinned, AMD64, settings(inside), None, tmp_path) is None
    mended = bases.layers_of(pinned, AMD64, settings(inside), Deadline.of(60), tmp_path)
    assert mended is not None
    assert mended.blob(digest) == got.blob(digest)


def test_each_platform_of_an_index_gets_its_own_layers(
    inside: Testbed, two_platform_base: str, tmp_path: Path
) -> None:
    index = raw(inside, two_platform_base)
    digest = (
        "sha256:" + hashlib.sha256(json.dumps(index, separators=(",", ":")).encode()).hexdigest()
    )
    found = inside.skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                          f"docker://{two_platform_base}")  # fmt: skip
    pinned = f"{two_platform_base}@{found.stdout.strip() or digest}"
    got = {
        p: bases.layers_of(pinned, p, settings(inside), Deadline.of(60), tmp_path)
        for p in (AMD64, ARM64)
    }
    amd, arm = got[AMD64], got[ARM64]
    assert amd is not None
    assert arm is not None
    assert len(arm.layers) == len(amd.layers) + 1
    assert arm.layers[: len(amd.layers)] == amd.layers
    arm_manifest = raw(inside, f"{two_platform_base}-arm64")
    assert list(arm.layers) == arm_manifest["layers"]
    with pytest.raises(PipelineError, match=r"has no linux/s390x image \(it has linux/amd64, "):
        bases.layers_of(pinned, parse_platform("linux/s390x"), settings(inside), None, tmp_path)


def test_a_single_platform_base_for_another_platform_is_one_line(
    inside: Testbed, tmp_path: Path
) -> None:
    pinned = f"{inside['TESTBED_STATIC_IMAGE']}@{inside['TESTBED_STATIC_DIGEST']}"
    with pytest.raises(PipelineError, match="is linux/amd64 only, not linux/arm64"):
        bases.layers_of(pinned, ARM64, settings(inside), Deadline.of(60), tmp_path)


def test_a_base_the_registry_lacks_is_named(inside: Testbed, tmp_path: Path) -> None:
    pinned = f"{inside.registry}/no/such@sha256:" + "0" * 64
    with pytest.raises(RegistryError, match=f"registry {inside.registry}"):
        bases.layers_of(pinned, AMD64, settings(inside), Deadline.of(60), tmp_path)
    unmirrored = replace(settings(inside), registry_mirrors=())
    assert bases.source(pinned, unmirrored).registry == inside.registry
