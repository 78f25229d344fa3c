"""pipeline.image.signing: cosign's simple-signing payload, DSSE's PAE and envelopes as the spec
writes them, and Sigstore bundles with cosign's shape, which the real cosign verifies."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.image import signing
from pipeline.image.keys import load_key
from tests.cosign import PASSWORD, binary, pem_key


def test_the_simple_signing_payload_is_cosigns() -> None:
    payload = signing.simple_signing("ghcr.io/acme/api", "sha256:" + "b" * 64)
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"ghcr.io/acme/api"},"image":'
        b'{"docker-manifest-digest":"sha256:' + b"b" * 64 + b'"},"type":"cosign container '
        b'image signature"},"optional":null}'
    )


def test_pae_is_the_dsse_specs() -> None:
    # The example of DSSE's protocol.md.
    assert signing.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_an_envelope_carries_the_statement_and_a_signature_over_its_pae(tmp_path: Path) -> None:
    key = load_key(pem_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "k.pem"), None)
    other = load_key(pem_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "o.pem"), None)
    body = signing.statement({"r/app": "sha256:" + "c" * 64}, "https://x/v1", {"a": 1})
    statement = json.loads(body)
    assert list(statement) == ["_type", "subject", "predicateType", "predicate"]
    assert statement["subject"] == [{"name": "r/app", "digest": {"sha256": "c" * 64}}]
    envelope = signing.envelope(body, key)
    found = json.loads(envelope)
    assert found["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(found["payload"]) == body
    assert signing.signed_by(envelope, key)
    assert not signing.signed_by(envelope, other)
    changed = {**found, "payload": base64.b64encode(body.replace(b"c", b"d")).decode()}
    assert not signing.signed_by(json.dumps(changed).encode(), key)
    assert not signing.signed_by(b"not json", key)


def test_a_bundle_is_cosigns_and_cosign_verifies_it(
    cosign_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """cosign v3 writes a bundle of a statement about a blob; ours of the same statement, with
    the same key, has its shape and hint, and cosign verifies it offline."""
    key_file, public = cosign_pair
    blob, predicate = tmp_path / "blob", tmp_path / "predicate.json"
    blob.write_text("hello\n")
    predicate.write_text('{"built": true}')
    theirs = tmp_path / "theirs.json"
    done = subprocess.run(
        [str(binary("v3.1.3")), "attest-blob", "--key", str(key_file), "--predicate",
         str(predicate), "--type", "https://example.com/t/v1", "--bundle", str(theirs),
         "--tlog-upload=false", "--use-signing-config=false", "--yes", str(blob)],
        capture_output=True, text=True, env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = json.loads(theirs.read_text())
    body = base64.b64decode(written["dsseEnvelope"]["payload"])
    key = load_key(key_file, PASSWORD)
    ours_bytes = signing.bundle(body, key)
    ours = json.loads(ours_bytes)
    assert ours["mediaType"] == written["mediaType"] == signing.BUNDLE
    assert ours["verificationMaterial"] == written["verificationMaterial"]  # the hint
    assert {k: v for k, v in ours["dsseEnvelope"].items() if k != "signatures"} == {
        k: v for k, v in written["dsseEnvelope"].items() if k != "signatures"
    }
    assert ours_bytes == signing.bundle(body, key)  # deterministic
    path = tmp_path / "ours.json"
    path.write_bytes(ours_bytes)
    verified = subprocess.run(
        [str(binary("v3.1.3")), "verify-blob-attestation", "--bundle", str(path), "--key",
         str(public), "--insecure-ignore-tlog=true", "--type", "https://example.com/t/v1",
         str(blob)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "Verified OK" in verified.stdout + verified.stderr
