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
from pipeline.image.keys import SigningKey
from pipeline.image.oci import INDEX, MANIFEST, digest_of
from pipeline.image.signing import Attestation
from pipeline.refs import parse_image_ref
from pipeline.registry.access import Deadline, Login
from pipeline.registry.signatures import sign
from tests.conftest import Testbed, put_blob

SLSA = "https://slsa.dev/provenance/v1"


def _key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


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
    key: SigningKey,
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

    def attestation(key: SigningKey, note: str) -> Attestation:
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


def _listed(registry: str, repository: str, digest: str) -> list[dict[str, Any]]:
    """The fallback tag's index (none if no tag)."""
    answer = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{digest.replace(':', '-')}",
        headers={"Accept": INDEX},
        timeout=30,
    )
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    manifests: list[dict[str, Any]] = answer.json()["manifests"]
    return manifests


def _sign_bundles(registry: str, repository: str, key: SigningKey, digest: str) -> list[str]:
    ref = parse_image_ref(f"{registry}/{repository}:1", option="--publish")
    statement = signing.statement({"app": digest}, SLSA, {"note": "n"})
    done = sign(
        ref, Login(None, None, None), Deadline.of(60), key,
        subjects=[{"mediaType": MANIFEST, "digest": digest, "size": 1}],
        attestations=[Attestation(SLSA, statement)], form=signing.SignatureFormat.BUNDLE,
        created="2026-12-02T00:00:00Z",
    )  # fmt: skip
    assert done.signatures == {}
    assert done.attestations is None
    return list(done.bundles)


def _bundle_manifest(registry: str, repository: str, digest: str) -> dict[str, Any]:
    answer = requests.get(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        headers={"Accept": MANIFEST},
        timeout=30,
    )
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def _artifact(registry: str, repository: str) -> dict[str, Any]:
    """Another tool's referrer, in the registry: its descriptor as the fallback tag lists it."""
    config = put_blob(f"http://{registry}", repository, b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": "application/vnd.example.other",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", **config}],
        }
    ).encode()
    digest = digest_of(manifest)
    answer = requests.put(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        data=manifest, headers={"Content-Type": MANIFEST}, timeout=30,
    )  # fmt: skip
    answer.raise_for_status()
    return {"mediaType": MANIFEST, "digest": digest, "size": len(manifest),
            "artifactType": "application/vnd.example.other"}  # fmt: skip


def test_bundles_join_the_fallback_tag_where_there_is_no_referrers_api(inside: Testbed) -> None:
    repository, digest = "signatures/bundles", _digest()
    other = _artifact(inside.registry, repository)
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [other]}).encode()
    put = requests.put(
        f"http://{inside.registry}/v2/{repository}/manifests/{digest.replace(':', '-')}",
        data=index, headers={"Content-Type": INDEX}, timeout=30,
    )  # fmt: skip
    put.raise_for_status()
    pushed = _sign_bundles(inside.registry, repository, _key(), digest)
    assert len(pushed) == 2  # the signature's bundle, the provenance's
    listed = _listed(inside.registry, repository, digest)
    assert listed[0] == other  # another tool's entry kept
    assert [m["digest"] for m in listed[1:]] == pushed
    assert {m["artifactType"] for m in listed[1:]} == {signing.BUNDLE}
    kinds = []
    for referrer in pushed:
        manifest = _bundle_manifest(inside.registry, repository, referrer)
        assert manifest["artifactType"] == signing.BUNDLE
        assert manifest["subject"]["digest"] == digest
        assert [la["mediaType"] for la in manifest["layers"]] == [signing.BUNDLE]
        assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
        kinds.append(manifest["annotations"]["dev.sigstore.bundle.predicateType"])
    assert kinds == [signing.COSIGN_SIGN, SLSA]


def test_a_registry_with_the_referrers_api_lists_the_bundles_itself(inside: Testbed) -> None:
    registry, repository, digest, key = (
        inside["TESTBED_REFERRERS_REGISTRY"],
        "signed/api",
        _digest(),
        _key(),
    )
    _artifact(registry, repository)  # the repository exists, as the pushed image makes it
    pushed = _sign_bundles(registry, repository, key, digest)
    assert _listed(registry, repository, digest) == []  # no fallback tag written
    answer = requests.get(
        f"http://{registry}/v2/{repository}/referrers/{digest}",
        params={"artifactType": signing.BUNDLE},
        timeout=30,
    )
    answer.raise_for_status()
    assert sorted(m["digest"] for m in answer.json()["manifests"]) == sorted(pushed)
    assert _sign_bundles(registry, repository, key, digest)[0] == pushed[0]  # deterministic
