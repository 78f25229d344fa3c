"""An image's referrers (OCI 1.1): its SBOM, and the Sigstore bundles that sign it
(pipeline.registry.bundles), each a manifest with the image as its subject. A registry with
the referrers API lists them itself; on one without it they are also listed in the index
under the fallback tag `sha256-<hex>` that tools ask for there, beside other tools'
referrers, with a guard against a concurrent push of another referrer of the same image."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import RegistryError
from pipeline.image.layout import dump
from pipeline.image.oci import INDEX, MANIFEST
from pipeline.refs import ImageRef
from pipeline.registry.access import Deadline, Login
from pipeline.registry.answers import check_answer, one_line_errors
from pipeline.registry.remote import EMPTY, TITLE, descriptor, upload
from pipeline.registry.transport import Client

RACE_TRIES = 3  # the SBOM index merged again when a concurrent push replaced ours
SETTLE = 0.5  # seconds between writing the SBOM index and reading it back


def _listed(client: Client, tag: str) -> list[dict[str, Any]]:
    """The referrers listed under the fallback tag: none if the tag does not exist; an error
    if it cannot be read (a 401 or 429 is not "no referrers")."""
    response = client.do_request(client.manifest_url(tag), "GET", headers={"Accept": INDEX})
    if response.status_code == 404:
        return []
    check_answer(response, client.ref, f"reading the tag {tag}")
    manifests = response.json().get("manifests", [])
    return [m for m in manifests if isinstance(m, dict) and "digest" in m]


def push_referrer(
    client: Client,
    subject: dict[str, Any],
    data: bytes,
    *,
    media_type: str,
    annotations: dict[str, str],
    named: str,
    layer_annotations: dict[str, str] | None = None,
    listed: bool = True,
) -> tuple[dict[str, Any], str | None]:
    """Push `data` (of `media_type`, also the artifactType) as an OCI 1.1 referrer of the
    image `subject` (its descriptor): an empty config, `data` as the one layer, PUT by its
    digest; `listed`, also in the index under the fallback tag `sha256-<hex>`, beside what
    other tools listed there (their manifests are in the registry already), unless the
    registry answers the PUT with OCI-Subject: then it has the referrers API and lists the
    referrer itself (the distribution spec's rule), and no tag is written, nor waited for.
    Its entry, and the fallback tag it is listed under (None if none); failures name it as
    `named` says ("the SBOM")."""
    fallback = str(subject["digest"]).replace(":", "-")
    what = f"push of {named}"
    container = client.get_container(f"{client.ref.endpoint}/{client.ref.repository}:{fallback}")
    with tempfile.TemporaryDirectory(prefix="pipeline-referrer-") as directory:
        layers = []
        for name, content, kind in (("config", b"{}", EMPTY), ("layer", data, media_type)):
            path = Path(directory) / name
            path.write_bytes(content)
            layers.append(upload(client, container, path, kind, what))
    if layer_annotations is not None:
        layers[1] = {**layers[1], "annotations": layer_annotations}
    manifest = dump(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": media_type,
            "config": layers[0],
            "layers": layers[1:],
            "subject": subject,
            "annotations": annotations,
        }
    )
    entry = {"mediaType": MANIFEST, **descriptor(manifest), "artifactType": media_type}
    put = {"Content-Type": MANIFEST}
    answer = client.do_request(client.manifest_url(entry["digest"]), "PUT", manifest, put)
    check_answer(answer, client.ref, what)
    if not listed or answer.headers.get("OCI-Subject") == subject["digest"]:
        return entry, None
    merge_into_tag(client, fallback, entry)
    return entry, fallback


def push_sbom(
    sbom: bytes,
    ref: ImageRef,
    login: Login,
    deadline: Deadline,
    *,
    subject: dict[str, Any],
    media_type: str,
    created: str,
) -> str | None:
    """Push `sbom` as a referrer of the image `subject` (its descriptor), listed under the
    fallback tag `sha256-<hex>` where the registry has no referrers API (push_referrer).
    Return that tag, or None where the registry lists the SBOM itself."""
    with one_line_errors(ref):
        _, tag = push_referrer(
            Client(ref, login, deadline), subject, sbom, media_type=media_type,
            annotations={"org.opencontainers.image.created": created}, named="the SBOM",
            layer_annotations={TITLE: "sbom.spdx.json"},
        )  # fmt: skip
    return tag


def merge_into_tag(client: Client, tag: str, entry: dict[str, Any]) -> None:
    """List `entry` in the index under `tag`, keeping every entry already there.

    Registries have no compare-and-swap: two pushes that read the index at once each write it
    back without the other's entry, and the later write wins. So each reads the index again
    SETTLE seconds after its write (longer than another writer's read-to-write gap), merges
    again if its entry is gone (up to RACE_TRIES times), and says so if it stays gone."""
    for _ in range(RACE_TRIES):
        listed = _listed(client, tag)
        if not any(m["digest"] == entry["digest"] for m in listed):
            index = dump({"schemaVersion": 2, "mediaType": INDEX, "manifests": [*listed, entry]})
            put = client.do_request(client.manifest_url(tag), "PUT", index, {"Content-Type": INDEX})
            check_answer(put, client.ref, tag)
        client.deadline.stop.wait(SETTLE)
        if any(m["digest"] == entry["digest"] for m in _listed(client, tag)):
            return
    raise RegistryError(
        f"{client.ref.registry}: the entry {entry['digest'][:19]} under {tag} was replaced by "
        f"a concurrent push {RACE_TRIES} times; push again"
    )
