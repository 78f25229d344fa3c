"""pipeline.registry.signatures against the test bed's registry (no engine): the `.sig` and
`.att` manifests cosign reads. Signing again with the same key writes nothing new; other keys'
signatures and attestations are kept; ours of a kind replace ours; a tag that holds something
else is one line."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import RegistryError
from pipeline.image import signing
from pipeline.image.oci import digest_of
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.signatures import Attestation, sign
from pipeline.registry.transport import INDEX, MANIFEST
from tests.conftest import Testbed

SLSA = "https://slsa.dev/provenance/v1"


def _key() -> signing.SigningKey:
    return signing.SigningKey(ec.generate_private_key(ec.SECP256R1()))


def _digest() -> str:
    return digest_of(secrets.token_bytes(16))  # what is signed need not exist to be signed


def _manifest(testbed: Testbed, repository: str, tag: str) -> tuple[dict[str, Any], str]:
    answer = requests.get(
        f"http://{testbed.registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json(), digest_of(answer.content)


def _sign(
    testbed: Testbed,
    repository: str,
    key: signing.SigningKey,
    digest: str,
    attestations: tuple[Attestation, ...] = (),
) -> tuple[dict[str, str], str | None]:
    ref = parse_image_ref(f"{testbed.registry}/{repository}:1", option="--publish")
    done = sign(
        ref, Login(None, None, None), Deadline.of(60), key,
        subjects=[{"mediaType": MANIFEST, "digest": digest, "size": 1}], attestations=attestations,
    )  # fmt: skip
    return done.signatures, done.attestations


def test_signing_again_with_the_same_key_writes_the_same_manifest(inside: Testbed) -> None:
    repository, digest, key = "signatures/again", _digest(), _key()
    first, _ = _sign(inside, repository, key, digest)
    tag = f"{digest.replace(':', '-')}.sig"
    before, at = _manifest(inside, repository, tag)
    second, _ = _sign(inside, repository, key, digest)
    after, again = _manifest(inside, repository, tag)
    assert first == second == {digest: at}
    assert at == again
    assert before == after
    (layer,) = after["layers"]
    assert layer["mediaType"] == signing.SIMPLE_SIGNING
    assert after["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"


def test_other_keys_signatures_are_kept(inside: Testbed) -> None:
    repository, digest, ours, theirs = "signatures/others", _digest(), _key(), _key()
    _sign(inside, repository, theirs, digest)
    signed, _ = _sign(inside, repository, ours, digest)
    manifest, at = _manifest(inside, repository, f"{digest.replace(':', '-')}.sig")
    assert signed[digest] == at
    payload = signing.simple_signing(f"{inside.registry}/{repository}", digest)
    found = [
        layer["annotations"]["dev.cosignproject.cosign/signature"] for layer in manifest["layers"]
    ]
    assert len(found) == 2
    assert theirs.verifies(payload, base64.b64decode(found[0]))
    assert ours.verifies(payload, base64.b64decode(found[1]))
    again, _ = _sign(inside, repository, ours, digest)
    assert again == signed  # ours is there already: the manifest is left as it is


def test_our_attestation_of_a_kind_replaces_ours_and_keeps_theirs(inside: Testbed) -> None:
    repository, digest, ours, theirs = "signatures/attest", _digest(), _key(), _key()

    def attestation(key: signing.SigningKey, note: str) -> Attestation:
        body = signing.statement({"app": digest}, SLSA, {"note": note})
        return Attestation(SLSA, body)

    _sign(inside, repository, theirs, digest, (attestation(theirs, "theirs"),))
    _sign(inside, repository, ours, digest, (attestation(ours, "first run"),))
    _, attested = _sign(inside, repository, ours, digest, (attestation(ours, "second run"),))
    manifest, at = _manifest(inside, repository, f"{digest.replace(':', '-')}.att")
    assert attested == at
    layers = manifest["layers"]
    assert [la["annotations"]["predicateType"] for la in layers] == [SLSA, SLSA]
    assert all(la["mediaType"] == signing.DSSE for la in layers)
    notes = []
    for layer in layers:
        blob = requests.get(
            f"http://{inside.registry}/v2/{repository}/blobs/{layer['digest']}", timeout=30
        )
        envelope = json.loads(blob.content)
        notes.append(json.loads(base64_payload(envelope))["predicate"]["note"])
    assert notes == ["theirs", "second run"]


def base64_payload(envelope: dict[str, Any]) -> bytes:
    return base64.b64decode(envelope["payload"])


def test_a_signature_tag_that_holds_something_else_is_one_line(inside: Testbed) -> None:
    repository, digest = "signatures/taken", _digest()
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()
    put = requests.put(
        f"http://{inside.registry}/v2/{repository}/manifests/{digest.replace(':', '-')}.sig",
        data=index,
        headers={"Content-Type": INDEX},
        timeout=30,
    )
    put.raise_for_status()
    with pytest.raises(RegistryError) as raised:
        _sign(inside, repository, _key(), digest)
    assert "is not a cosign manifest: move it away to sign" in str(raised.value)
    assert "\n" not in str(raised.value)
