"""Pushing the reproducible layout as it is: oras PUTs the manifest bytes unchanged, so the
registry's digest is the one computed here (Dagger's publish would re-stamp the config).
Artifacts (the Go caches') pushed and pulled as OCI manifests of plain blobs. Every request
goes through pipeline.registry.transport's Client; the image's referrers (its SBOM, its
signatures' bundles) are pipeline.registry.referrers'."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import oras.layout

from pipeline.errors import RegistryError
from pipeline.image.layout import dump
from pipeline.image.oci import MANIFEST, REF_NAME, digest_of, file_digest
from pipeline.refs import ImageRef
from pipeline.registry.access import Deadline, Login
from pipeline.registry.answers import check_answer, one_line_errors
from pipeline.registry.transport import Client

EMPTY = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"
Layer = dict[str, Any]


def push_image(
    tarball: Path,
    ref: ImageRef,
    login: Login,
    deadline: Deadline,
    *,
    ref_name: str,
    digest: str,
    mounts: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    """Push the layout in `tarball` (its image named `ref_name` in index.json) to `ref`; fail
    unless the registry then reports `digest`. The blobs of `mounts` (digest → a repository
    of the same registry that has them: the base's) are mounted from there, not sent. Return
    `registry/repository:tag@digest` and the bytes of the blobs sent."""
    tag = ref.push_tag
    with tempfile.TemporaryDirectory(prefix="pipeline-push-") as layout, one_line_errors(ref):
        client = Client(ref, login, deadline)
        client.mounts.update(mounts or {})
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
    return f"{ref.qualified}:{tag}@{digest}", client.sent


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


def descriptor(data: bytes) -> dict[str, Any]:
    return {"digest": digest_of(data), "size": len(data)}


def upload(client: Client, container: Any, path: Path, media_type: str, what: str) -> Layer:
    """Upload the file at `path` as a blob (skipped if the registry has it); its descriptor."""
    layer: Layer = {
        "mediaType": media_type,
        "digest": file_digest(path),
        "size": path.stat().st_size,
    }
    check_answer(client.upload_blob(str(path), container, layer), client.ref, what)
    return layer


def push_artifact(
    files: Sequence[tuple[Path, str]],
    ref: ImageRef,
    tag: str,
    login: Login,
    deadline: Deadline,
    *,
    artifact_type: str,
    annotations: dict[str, str],
) -> tuple[str, int]:
    """Push `files` (path, media type) as the layers of an OCI artifact tagged `tag` under
    `ref`'s repository (blobs the registry has are not sent again). Its digest and size."""
    with (
        tempfile.TemporaryDirectory(prefix="pipeline-artifact-") as directory,
        one_line_errors(ref),
    ):
        client = Client(ref, login, deadline)
        client.check_login()
        container = client.get_container(f"{ref.endpoint}/{ref.repository}:{tag}")
        empty = Path(directory) / "config"
        empty.write_bytes(b"{}")
        what = f"push to {ref.repository}:{tag}"
        config = upload(client, container, empty, EMPTY, what)
        layers = [
            {**upload(client, container, path, kind, what), "annotations": {TITLE: path.name}}
            for path, kind in files
        ]
        manifest = dump(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "artifactType": artifact_type,
                "config": config,
                "layers": layers,
                "annotations": annotations,
            }
        )
        put = {"Content-Type": MANIFEST}
        answer = client.do_request(client.manifest_url(tag), "PUT", manifest, put)
        check_answer(answer, ref, what)
    size = sum(int(layer["size"]) for layer in layers)
    return descriptor(manifest)["digest"], size


class NotFound(RegistryError):
    """The registry has no manifest under the tag asked for."""


def _artifact_manifest(
    client: Client, ref: ImageRef, tag: str, artifact_type: str
) -> tuple[str, list[tuple[str, int, str]]]:
    """The digest of the artifact tagged `tag` and its layers (digest, size, media type).
    NotFound if there is none; RegistryError if it is not an `artifact_type`."""
    answer = client.do_request(client.manifest_url(tag), "GET", headers={"Accept": MANIFEST})
    if answer.status_code == 404:
        raise NotFound(f"{ref.qualified}:{tag} does not exist (yet)")
    check_answer(answer, ref, f"reading {ref.repository}:{tag}")
    try:
        manifest = answer.json()
        found = manifest.get("artifactType")
        layers = [
            (str(la["digest"]), int(la["size"]), str(la["mediaType"])) for la in manifest["layers"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(f"{ref.qualified}:{tag} is not an OCI manifest") from None
    if found != artifact_type:
        raise RegistryError(
            f"{ref.qualified}:{tag} is not a {artifact_type} (its artifactType: {found or 'none'})"
        )
    return digest_of(answer.content), layers


def artifact_at(
    ref: ImageRef, tag: str, login: Login, deadline: Deadline, *, artifact_type: str
) -> tuple[str, int]:
    """The digest of the artifact tagged `tag` under `ref`'s repository and its layers' bytes,
    without pulling them. NotFound if there is none."""
    with one_line_errors(ref):
        client = Client(ref, login, deadline, actions="pull")
        digest, layers = _artifact_manifest(client, ref, tag, artifact_type)
    return digest, sum(size for _, size, _ in layers)


def pull_artifact(
    ref: ImageRef,
    tag: str,
    login: Login,
    deadline: Deadline,
    directory: Path,
    *,
    artifact_type: str,
) -> list[tuple[Path, str]]:
    """The layers of the artifact tagged `tag` under `ref`'s repository, as files in
    `directory` (each checked against its digest and size), with their media types. NotFound
    if there is none; RegistryError if it is not an `artifact_type` or a blob is corrupt."""
    with one_line_errors(ref):
        client = Client(ref, login, deadline, actions="pull")
        _, layers = _artifact_manifest(client, ref, tag, artifact_type)
        pulled = []
        for index, (digest, size, media_type) in enumerate(layers):
            path = directory / f"layer-{index}"
            download_blob(client, digest, size, path)
            pulled.append((path, media_type))
    return pulled


def download_blob(client: Client, digest: str, size: int, path: Path) -> None:
    """GET the blob `digest` into `path`; RegistryError unless its bytes match."""
    url = f"{client.prefix}://{client.ref.endpoint}/v2/{client.ref.repository}/blobs/{digest}"
    answer = client.do_request(url, "GET", stream=True)
    check_answer(answer, client.ref, f"GET of the blob {digest[:19]}")
    hasher, written = hashlib.sha256(), 0
    with answer, path.open("wb") as file:
        for chunk in answer.iter_content(1 << 20):
            client.deadline.left(client.ref.registry)
            written += len(chunk)
            if written > size:
                break
            hasher.update(chunk)
            file.write(chunk)
    if written != size or f"sha256:{hasher.hexdigest()}" != digest:
        raise RegistryError(
            f"{client.ref.registry}: the blob {digest[:19]}… is corrupt (its bytes do not match"
            " its digest)"
        )
