"""cosign's signatures and attestations of a pushed image, where every verifier reads them: the
manifests under the tags `sha256-<hex>.sig` and `sha256-<hex>.att` of the image's repository
(cosign, Kyverno's `type: Cosign` and policy-controller with a key read these). Each manifest
holds one layer per signature or attestation. Ours joins those already there (other keys' are
kept) and replaces the one our key made before, so that signing the same digest again writes
the same manifest, byte for byte."""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import RegistryError
from pipeline.image import signing
from pipeline.image.layout import dump
from pipeline.image.oci import INDEX, MANIFEST, digest_of
from pipeline.image.signing import Attestation, Signed
from pipeline.refs import ImageRef
from pipeline.registry import bundles
from pipeline.registry.access import Deadline, Login
from pipeline.registry.answers import check_answer, one_line_errors
from pipeline.registry.remote import download_blob, upload
from pipeline.registry.transport import Client

SIGNATURE = "dev.cosignproject.cosign/signature"
PREDICATE = "predicateType"
CONFIG = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"  # cosign's: no wall clock in a signature's manifest


@dataclass(frozen=True)
class _Ours:
    data: bytes
    media_type: str
    annotations: dict[str, str]


def _read(client: Client, tag: str) -> tuple[list[dict[str, Any]], bytes]:
    """The layers of the manifest under `tag` and its bytes (none and b"" if no tag)."""
    accept = {"Accept": f"{MANIFEST}, {INDEX}"}  # so that a tag taken by an index shows
    answer = client.do_request(client.manifest_url(tag), "GET", headers=accept)
    if answer.status_code == 404:
        return [], b""
    check_answer(answer, client.ref, f"reading the tag {tag}")
    try:
        found: dict[str, Any] = answer.json()
        layers = found["layers"]
    except (ValueError, KeyError, TypeError):
        layers = None
    if not isinstance(layers, list) or not all(isinstance(la, dict) for la in layers):
        raise RegistryError(
            f"{client.ref.qualified}:{tag} is not a cosign manifest: move it away to sign"
        )
    return layers, answer.content


def _config(layers: Sequence[dict[str, Any]]) -> bytes:
    """cosign's config of a signature manifest: its layers uncompressed, no times."""
    return dump(
        {
            "architecture": "",
            "created": ZERO_TIME,
            "history": [{"created": ZERO_TIME} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
            "config": {},
        }
    )


def _attach(
    client: Client, tag: str, ours: _Ours, replaced: Callable[[dict[str, Any]], bool]
) -> str:
    """Write the manifest under `tag` with `ours` after the layers there that are not
    `replaced`; its digest."""
    there, raw = _read(client, tag)
    if any(
        layer.get("digest") == digest_of(ours.data) and layer.get("annotations") == ours.annotations
        for layer in there
    ):  # signed before, by this key (deterministic): nothing to write
        return digest_of(raw)
    kept = [layer for layer in there if not replaced(layer)]
    container = client.get_container(f"{client.ref.endpoint}/{client.ref.repository}:{tag}")
    what = f"push of {tag}"
    with tempfile.TemporaryDirectory(prefix="pipeline-sign-") as directory:
        path = Path(directory) / "layer"
        path.write_bytes(ours.data)
        layer = {**upload(client, container, path, ours.media_type, what)}
        layers = [*kept, {**layer, "annotations": ours.annotations}]
        config = Path(directory) / "config"
        config.write_bytes(_config(layers))
        described = upload(client, container, config, CONFIG, what)
    manifest = dump(
        {"schemaVersion": 2, "mediaType": MANIFEST, "config": described, "layers": layers}
    )
    answer = client.do_request(
        client.manifest_url(tag), "PUT", manifest, {"Content-Type": MANIFEST}
    )
    check_answer(answer, client.ref, what)
    return digest_of(manifest)


def _signature_by(key: signing.Signer, payload: bytes) -> Callable[[dict[str, Any]], bool]:
    """Whether a `.sig` layer is `key`'s signature of `payload`."""

    def replaced(layer: dict[str, Any]) -> bool:
        if layer.get("digest") != digest_of(payload):
            return False
        try:
            signature = base64.b64decode(layer.get("annotations", {}).get(SIGNATURE, ""))
        except (binascii.Error, TypeError, AttributeError):
            return False
        return key.verifies(payload, signature)

    return replaced


def _attestation_by(
    client: Client, key: signing.Signer, predicate_type: str, directory: Path
) -> Callable[[dict[str, Any]], bool]:
    """Whether an `.att` layer is an attestation of `predicate_type` that `key` signed."""

    def replaced(layer: dict[str, Any]) -> bool:
        if layer.get("annotations", {}).get(PREDICATE) != predicate_type:
            return False
        path = directory / str(layer.get("digest", "")).replace(":", "-")
        download_blob(client, str(layer["digest"]), int(layer["size"]), path)
        return signing.signed_by(path.read_bytes(), key)

    return replaced


def _legacy(
    client: Client,
    key: signing.Signer,
    digests: Sequence[str],
    attestations: Sequence[Attestation],
    directory: Path,
) -> Signed:
    """The `.sig` tag of each digest, and the `.att` tag of the first."""
    ref = client.ref
    signatures: dict[str, str] = {}
    attested: str | None = None
    # The repository as cosign names it (go-containerregistry's name for Docker Hub).
    identity = f"index.docker.io/{ref.repository}" if ref.docker_hub else ref.qualified
    for digest in digests:
        payload = signing.simple_signing(identity, digest)
        signature = base64.b64encode(key.sign(payload)).decode()
        ours = _Ours(payload, signing.SIMPLE_SIGNING, {SIGNATURE: signature})
        tag = f"{digest.replace(':', '-')}.sig"
        signatures[digest] = _attach(client, tag, ours, _signature_by(key, payload))
    tag = f"{digests[0].replace(':', '-')}.att"
    for attestation in attestations:
        kind = attestation.predicate_type
        envelope = signing.envelope(attestation.statement, key)
        ours = _Ours(envelope, signing.DSSE, {SIGNATURE: "", PREDICATE: kind})
        attested = _attach(client, tag, ours, _attestation_by(client, key, kind, directory))
    return Signed(signatures, attested)


def _bundled(
    client: Client,
    key: signing.Signer,
    subjects: Sequence[dict[str, Any]],
    attestations: Sequence[Attestation],
    created: str | None,
) -> tuple[str, ...]:
    """A signature bundle for each subject, and the attestations' bundles for the first."""
    api = bundles.has_referrers_api(client, str(subjects[0]["digest"]))
    pushed: list[str] = []
    for index, subject in enumerate(subjects):
        signature = signing.statement({"": str(subject["digest"])}, signing.COSIGN_SIGN, {})
        items = [(signing.COSIGN_SIGN, signing.bundle(signature, key))]
        if index == 0:
            items += [(a.predicate_type, signing.bundle(a.statement, key)) for a in attestations]
        pushed += bundles.attach(client, subject, items, created=created, api=api)
    return tuple(pushed)


def sign(
    ref: ImageRef,
    login: Login,
    deadline: Deadline,
    key: signing.Signer,
    *,
    subjects: Sequence[dict[str, Any]],
    attestations: Sequence[Attestation],
    form: signing.SignatureFormat = signing.SignatureFormat.LEGACY,
    created: str | None = None,
) -> Signed:
    """Sign each of `subjects` (descriptors: the pushed image's, then each platform's, as
    cosign sign --recursive does) and attach `attestations` to the first, in `ref`'s
    repository, in the tags and bundles `form` names."""
    with one_line_errors(ref), tempfile.TemporaryDirectory(prefix="pipeline-att-") as directory:
        client = Client(ref, login, deadline)
        digests = [str(s["digest"]) for s in subjects]
        signed = Signed({}, None)
        if form.legacy:
            signed = _legacy(client, key, digests, attestations, Path(directory))
        if form.bundles:
            referrers = _bundled(client, key, subjects, attestations, created)
            signed = Signed(signed.signatures, signed.attestations, referrers)
    return signed
