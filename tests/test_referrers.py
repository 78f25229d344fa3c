"""pipeline.registry.referrers against the test bed's registries: the SBOM's fallback tag keeps
other tools' entries (without their blobs); a registry with the referrers API lists the SBOM
itself and no tag is written; a failed read of the tag is an error; two pushes at once keep
both entries (or the loser says so). The faults come from a real proxy in front of the real
registry (tests/proxy.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from pipeline.errors import RegistryError
from pipeline.image.oci import INDEX
from pipeline.refs import ImageRef, parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.referrers import push_sbom
from pipeline.registry.remote import push_image
from tests.conftest import Testbed, unique
from tests.layouts import digested, tiny_layout
from tests.proxy import faulty_proxy

SPDX = "application/spdx+json"
CREATED = "2023-11-14T22:13:20Z"


def _put_foreign_signature(registry: str, repository: str, subject: dict[str, Any]) -> str:
    """Another tool's referrer (a cosign-style signature) in the registry, listed under the
    fallback tag; its manifest's digest."""
    base = f"http://{registry}/v2/{repository}"
    config, payload = b"{}", b'{"critical":{"image":{"docker-manifest-digest":"x"}}}'
    for data in (config, payload):
        started = requests.post(f"{base}/blobs/uploads/", timeout=30)
        location = started.headers["Location"]
        joiner = "&" if "?" in location else "?"
        done = requests.put(f"{location}{joiner}digest={digested(data)[0]}", data=data, timeout=30)
        assert done.status_code == 201, done.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digested(config)[0],
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": digested(payload)[0],
                    "size": len(payload),
                }
            ],
            "subject": subject,
        }
    ).encode()
    digest = digested(manifest)[0]
    kind = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    put = requests.put(f"{base}/manifests/{digest}", data=manifest, headers=kind, timeout=30)
    assert put.status_code == 201, put.text
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                "annotations": {"dev.sigstore.cosign": "signature"},
            }
        ],
    }
    tag = str(subject["digest"]).replace(":", "-")
    put = requests.put(
        f"{base}/manifests/{tag}",
        data=json.dumps(index),
        headers={"Content-Type": INDEX},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    return digest


def _pushed_subject(
    testbed: Testbed, tmp_path: Path, repository: str, registry: str | None = None
) -> dict[str, Any]:
    registry = registry or testbed.registry
    tarball = tmp_path / "image.tar"
    digest = tiny_layout(tarball, "hello:1", unique().encode())
    ref = parse_image_ref(f"{registry}/{repository}:1", option="--publish")
    push_image(
        tarball, ref, Login(None, None, None), Deadline.of(60), ref_name="hello:1", digest=digest
    )
    size = len(requests.get(f"http://{registry}/v2/{repository}/manifests/1",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                            timeout=30).content)  # fmt: skip
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": size,
    }


def _listed(testbed: Testbed, repository: str, tag: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"http://{testbed.registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": INDEX},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    manifests: list[dict[str, Any]] = answer.json()["manifests"]
    return manifests


def _sbom_to(ref: ImageRef, subject: dict[str, Any], document: bytes) -> str | None:
    """push_sbom of `document` as an SPDX referrer of `subject`, anonymously."""
    return push_sbom(
        document,
        ref,
        Login(None, None, None),
        Deadline.of(60),
        subject=subject,
        media_type=SPDX,
        created=CREATED,
    )


def test_the_sbom_joins_other_tools_referrers_without_their_blobs(
    inside: Testbed, tmp_path: Path
) -> None:
    repository = f"referrers/{unique()}"
    subject = _pushed_subject(inside, tmp_path, repository)
    signature = _put_foreign_signature(inside.registry, repository, subject)
    ref = parse_image_ref(f"{inside.registry}/{repository}:1", option="--publish")
    tag = _sbom_to(ref, subject, b'{"spdxVersion":"SPDX-2.3"}')
    assert tag is not None  # listed: this registry has no referrers API
    listed = _listed(inside, repository, tag)
    assert [m["artifactType"] for m in listed] == [
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        SPDX,
    ]
    assert listed[0]["digest"] == signature
    assert listed[0]["annotations"] == {"dev.sigstore.cosign": "signature"}  # kept as it was


def test_a_registry_with_the_referrers_api_lists_the_sbom_itself(
    inside: Testbed, tmp_path: Path
) -> None:
    """It answers the SBOM's PUT with OCI-Subject: no fallback tag is written (nor waited
    for), and the referrers API lists the SBOM."""
    registry, repository = inside["TESTBED_REFERRERS_REGISTRY"], f"referrers/{unique()}"
    subject = _pushed_subject(inside, tmp_path, repository, registry)
    ref = parse_image_ref(f"{registry}/{repository}:1", option="--publish")
    tag = _sbom_to(ref, subject, b'{"spdxVersion":"SPDX-2.3"}')
    assert tag is None
    fallback = str(subject["digest"]).replace(":", "-")
    answer = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{fallback}",
        headers={"Accept": INDEX},
        timeout=30,
    )
    assert answer.status_code == 404, answer.text
    listing = requests.get(
        f"http://{registry}/v2/{repository}/referrers/{subject['digest']}", timeout=30
    )
    assert listing.status_code == 200, listing.text
    assert [m["artifactType"] for m in listing.json()["manifests"]] == [SPDX]


def test_a_fallback_tag_that_cannot_be_read_is_an_error(inside: Testbed, tmp_path: Path) -> None:
    repository = f"referrers/{unique()}"
    subject = _pushed_subject(inside, tmp_path, repository)

    def broken(method: str, path: str) -> tuple[int, dict[str, str]] | None:
        return (500, {}) if method == "GET" and "/manifests/sha256-" in path else None

    with faulty_proxy(inside.registry, broken) as (proxy, _):
        ref = parse_image_ref(f"{proxy}/{repository}:1", option="--publish")
        with pytest.raises(RegistryError, match=r"reading the tag sha256-\w+ .* HTTP 500"):
            _sbom_to(ref, subject, b"{}")


def test_two_sbom_pushes_at_once_keep_both_entries(inside: Testbed, tmp_path: Path) -> None:
    repository = f"referrers/{unique()}"
    subject = _pushed_subject(inside, tmp_path, repository)
    ref = parse_image_ref(f"{inside.registry}/{repository}:1", option="--publish")
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def push(document: bytes) -> None:
        start.wait()
        try:
            outcomes.append(
                str(  # the tag: this registry has no referrers API
                    _sbom_to(ref, subject, document)
                )
            )
        except RegistryError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=push, args=(d,)) for d in (b'{"a":1}', b'{"b":2}')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tag = str(subject["digest"]).replace(":", "-")
    lost = [o for o in outcomes if "replaced by a concurrent push" in o]
    listed = _listed(inside, repository, tag)
    assert len(listed) + len(lost) == 2, (listed, outcomes)
    assert outcomes.count(tag) == len(listed)
