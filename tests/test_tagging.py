"""pipeline.registry.tagging: a pushed manifest put under further tags, against the test bed's
registry (no engine): every tag at the one digest, and a refusal that names the tags already
made."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import requests

from pipeline.errors import RegistryError
from pipeline.image.oci import MANIFEST, digest_of
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.tagging import add_tags, manifest_bytes
from tests.conftest import Testbed, put_blob

REPOSITORY = "tagging/app"


def _manifest(testbed: Testbed, layer: dict[str, object]) -> bytes:
    base = f"http://{testbed.registry}"
    config = put_blob(base, REPOSITORY, b'{"architecture":"amd64","os":"linux"}')
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }
    ).encode()


def _digest_at(testbed: Testbed, tag: str) -> str:
    answer = requests.head(
        f"http://{testbed.registry}/v2/{REPOSITORY}/manifests/{tag}",
        headers={"Accept": MANIFEST},
        timeout=30,
    )
    assert answer.status_code == 200, (tag, answer.status_code)
    return answer.headers["Docker-Content-Digest"]


def test_every_tag_names_the_pushed_digest(inside: Testbed) -> None:
    testbed = inside
    layer = put_blob(f"http://{testbed.registry}", REPOSITORY, b"a layer")
    manifest = _manifest(testbed, layer)
    ref = parse_image_ref(f"{testbed.registry}/{REPOSITORY}:one", option="--publish")
    made = add_tags(
        manifest,
        ref,
        Login(None, None, None),
        Deadline.of(60),
        media_type=MANIFEST,
        tags=["two", "three"],
        pushed=f"{REPOSITORY}:one",
    )
    assert made == ("two", "three")
    assert {_digest_at(testbed, t) for t in made} == {digest_of(manifest)}


def test_a_refused_tag_names_those_made_before_it(inside: Testbed) -> None:
    # The registry refuses a manifest whose layer it does not hold (MANIFEST_BLOB_UNKNOWN).
    testbed = inside
    missing = {"digest": digest_of(b"never uploaded"), "size": 14}
    manifest = _manifest(testbed, missing)
    ref = parse_image_ref(f"{testbed.registry}/{REPOSITORY}:one", option="--publish")
    with pytest.raises(RegistryError) as raised:
        add_tags(
            manifest,
            ref,
            Login(None, None, None),
            Deadline.of(60),
            media_type=MANIFEST,
            tags=["four"],
            pushed=f"{REPOSITORY}:one",
        )
    said = str(raised.value)
    assert "\n" not in said
    assert said.startswith(f"registry {testbed.registry}: the tag four failed: HTTP 400"), said
    assert said.endswith(f"tagged already: {REPOSITORY}:one"), said


def test_the_manifest_is_read_from_the_layout_byte_for_byte(tmp_path: Path) -> None:
    manifest = b'{"schemaVersion":2}'
    digest = digest_of(manifest)
    tarball = tmp_path / "image.tar"
    with tarfile.open(tarball, "w") as tar:
        member = tarfile.TarInfo(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        member.size = len(manifest)
        tar.addfile(member, io.BytesIO(manifest))
    assert manifest_bytes(tarball, digest) == manifest
    with pytest.raises(RegistryError, match="missing or changed"):
        manifest_bytes(tarball, digest_of(b"another"))
