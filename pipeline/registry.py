"""Pushing the reproducible layout as it is: oras PUTs the manifest bytes unchanged, so the
registry's digest is the one computed here (Dagger's publish would re-stamp the config).
Then the SBOM, as an OCI 1.1 referrer of the image, also under the `sha256-<hex>` tag that
registries without the referrers API are asked for, beside other tools' referrers. Every
request goes through pipeline.transport's Client."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import oras.layout

from pipeline.errors import RegistryError
from pipeline.reproducible import REF_NAME
from pipeline.settings import ImageRef
from pipeline.transport import (
    INDEX,
    MANIFEST,
    Budget,
    Client,
    Login,
    check_answer,
    one_line_errors,
)

EMPTY = "application/vnd.oci.empty.v1+json"
RACE_TRIES = 3  # the SBOM index merged again when a concurrent push replaced ours
SETTLE = 0.5  # seconds between writing the SBOM index and reading it back


def push_image(
    tarball: Path, ref: ImageRef, login: Login, budget: Budget, *, ref_name: str, digest: str
) -> str:
    """Push the layout in `tarball` (its image named `ref_name` in index.json) to `ref`; fail
    unless the registry then reports `digest`. Return `registry/repository:tag@digest`."""
    tag = ref.tag or "latest"
    with tempfile.TemporaryDirectory(prefix="pipeline-push-") as layout, one_line_errors(ref):
        client = Client(ref, login, budget)
        client.check_login()
        with tarfile.open(tarball) as tar:
            tar.extractall(layout, filter="data")
        _name_the_image(Path(layout), ref_name)
        response = oras.layout.Layout(layout).push_to_registry(
            client, target=f"{ref.endpoint}/{ref.repository}:{tag}", tag=ref_name
        )
        check_answer(response, ref, "push")
        remote = client.remote_digest(tag)
    if remote != digest:
        raise RegistryError(
            f"{ref.registry} reports {remote or 'no digest'} for {ref.path}:{tag}, not the "
            f"pushed {digest}: the registry rewrote the manifest"
        )
    return f"{ref.canonical}:{tag}@{digest}"


def _name_the_image(layout: Path, ref_name: str) -> None:
    """oras finds the image to push by its name in index.json: the engine's own export (naive,
    the builder image) names none, so its one image is given `ref_name` (index.json is not
    pushed: the digest stays)."""
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    entries = index.get("manifests", [])
    if len(entries) == 1 and REF_NAME not in entries[0].get("annotations", {}):
        entries[0].setdefault("annotations", {})[REF_NAME] = ref_name
        index_path.write_text(json.dumps(index))


def _dump(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _descriptor(data: bytes) -> dict[str, Any]:
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def _listed(client: Client, tag: str) -> list[dict[str, Any]]:
    """The referrers listed under the fallback tag: none if the tag does not exist; an error
    if it cannot be read (a 401 or 429 is not "no referrers")."""
    response = client.do_request(client.manifest_url(tag), "GET", headers={"Accept": INDEX})
    if response.status_code == 404:
        return []
    check_answer(response, client.ref, f"reading the tag {tag}")
    manifests = response.json().get("manifests", [])
    return [m for m in manifests if isinstance(m, dict) and "digest" in m]


def push_sbom(
    sbom: bytes,
    ref: ImageRef,
    login: Login,
    budget: Budget,
    *,
    subject: dict[str, Any],
    media_type: str,
    created: str,
) -> str:
    """Push `sbom` as a referrer of the image `subject` (its descriptor), and list it in the
    index under the fallback tag `sha256-<hex>`, beside what other tools listed there
    (signatures, attestations: their manifests are in the registry already). Return the tag."""
    fallback = str(subject["digest"]).replace(":", "-")
    with tempfile.TemporaryDirectory(prefix="pipeline-sbom-") as directory, one_line_errors(ref):
        client = Client(ref, login, budget)
        container = client.get_container(f"{ref.endpoint}/{ref.repository}:{fallback}")
        layers = []
        for name, data, kind in (("config", b"{}", EMPTY), ("sbom", sbom, media_type)):
            path = Path(directory) / name
            path.write_bytes(data)
            layer = {"mediaType": kind, **_descriptor(data)}
            check_answer(client.upload_blob(str(path), container, layer), ref, "push of the SBOM")
            layers.append(layer)
        manifest = _dump(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "artifactType": media_type,
                "config": layers[0],
                "layers": [
                    {
                        **layers[1],
                        "annotations": {"org.opencontainers.image.title": "sbom.spdx.json"},
                    }
                ],
                "subject": subject,
                "annotations": {"org.opencontainers.image.created": created},
            }
        )
        entry = {"mediaType": MANIFEST, **_descriptor(manifest), "artifactType": media_type}
        put = {"Content-Type": MANIFEST}
        answer = client.do_request(client.manifest_url(entry["digest"]), "PUT", manifest, put)
        check_answer(answer, ref, "push of the SBOM")
        _merge_into_tag(client, fallback, entry)
    return fallback


def _merge_into_tag(client: Client, tag: str, entry: dict[str, Any]) -> None:
    """List `entry` in the index under `tag`, keeping every entry already there.

    Registries have no compare-and-swap: two pushes that read the index at once each write it
    back without the other's entry, and the later write wins. So each reads the index again
    SETTLE seconds after its write (longer than another writer's read-to-write gap), merges
    again if its entry is gone (up to RACE_TRIES times), and says so if it stays gone."""
    for _ in range(RACE_TRIES):
        listed = _listed(client, tag)
        if not any(m["digest"] == entry["digest"] for m in listed):
            index = _dump({"schemaVersion": 2, "mediaType": INDEX, "manifests": [*listed, entry]})
            put = client.do_request(client.manifest_url(tag), "PUT", index, {"Content-Type": INDEX})
            check_answer(put, client.ref, tag)
        client.budget.stop.wait(SETTLE)
        if any(m["digest"] == entry["digest"] for m in _listed(client, tag)):
            return
    raise RegistryError(
        f"{client.ref.registry}: the SBOM's entry under {tag} was replaced by a concurrent push "
        f"{RACE_TRIES} times; push again"
    )
