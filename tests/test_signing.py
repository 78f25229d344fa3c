"""pipeline.image.signing: keys from `cosign generate-key-pair` (the real binary, as tests/setup
installs it) and from plain PEMs open; a key that cannot sign is one line saying why; the same
bytes signed twice give the same signature (RFC 6979); DSSE's PAE and envelopes as the spec
writes them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pipeline.image import signing
from pipeline.image.signing import SigningKeyError, load_key
from tests.cosign import binary, generate_key_pair

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def cosign_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("cosign"), PASSWORD)


def _pem(key: object, path: Path, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    assert isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def test_a_cosign_key_file_opens_with_its_password(cosign_pair: tuple[Path, Path]) -> None:
    key, public = cosign_pair
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in key.read_bytes()
    opened = load_key(key, PASSWORD)
    assert opened.public_pem == public.read_bytes()
    assert "PRIVATE" not in repr(opened)


def test_a_wrong_password_is_one_line(cosign_pair: tuple[Path, Path]) -> None:
    with pytest.raises(SigningKeyError, match=r"wrong password \(check \$PIPELINE_SIGN_PASSWORD\)"):
        load_key(cosign_pair[0], "not it")
    with pytest.raises(SigningKeyError, match="wrong password"):
        load_key(cosign_pair[0], None)


def test_plain_and_encrypted_pkcs8_pems_open(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    plain = load_key(_pem(key, tmp_path / "plain.pem"), None)
    assert plain.public_pem == load_key(tmp_path / "plain.pem", "ignored").public_pem
    sealed = _pem(key, tmp_path / "sealed.pem", PASSWORD)
    assert load_key(sealed, PASSWORD).public_pem == plain.public_pem
    with pytest.raises(SigningKeyError, match="the key is encrypted: give its password"):
        load_key(sealed, None)
    with pytest.raises(SigningKeyError, match="wrong password"):
        load_key(sealed, "not it")


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "an EC secp384r1 key"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "an RSA key"),
        (ed25519.Ed25519PrivateKey.generate(), "an Ed25519 key"),
    ],
)
def test_a_key_that_is_not_ec_p256_is_refused(tmp_path: Path, key: object, named: str) -> None:
    path = _pem(key, tmp_path / "other.pem")
    with pytest.raises(SigningKeyError) as raised:
        load_key(path, None)
    assert str(raised.value) == (
        f"--sign-key {path}: {named}; cosign keys here are ECDSA P-256 (make one with "
        "`cosign generate-key-pair`)"
    )


def test_what_is_not_a_key_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="does not exist: give the path of a key file"):
        load_key(tmp_path / "missing.key", None)
    with pytest.raises(SigningKeyError, match="KMS URIs and keyless signing are not supported"):
        load_key(Path("awskms:///alias/release"), None)
    with pytest.raises(SigningKeyError, match="is not a file"):
        load_key(tmp_path, None)
    (tmp_path / "text").write_text("hello\n")
    with pytest.raises(SigningKeyError, match="not a PEM key"):
        load_key(tmp_path / "text", None)
    (tmp_path / "broken").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(SigningKeyError, match="its PRIVATE KEY is not a readable key"):
        load_key(tmp_path / "broken", None)


def test_signing_the_same_bytes_twice_gives_the_same_signature(
    cosign_pair: tuple[Path, Path],
) -> None:
    key = load_key(cosign_pair[0], PASSWORD)
    payload = signing.simple_signing("127.0.0.1:5000/team/app", "sha256:" + "a" * 64)
    first, second = key.sign(payload), key.sign(payload)
    assert first == second
    assert key.verifies(payload, first)
    assert not key.verifies(payload + b" ", first)
    assert key.sign(payload + b" ") != first


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
    key = load_key(_pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "k.pem"), None)
    other = load_key(_pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "o.pem"), None)
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
