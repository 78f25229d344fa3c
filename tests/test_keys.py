"""pipeline.image.keys: keys from `cosign generate-key-pair` (the real binary, as tests/setup
installs it) and from plain PEMs open; a key that cannot sign is one line saying why; the same
bytes signed twice give the same signature (RFC 6979)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pipeline.image import signing
from pipeline.image.keys import load_key
from pipeline.image.signing import SigningKeyError
from tests.cosign import PASSWORD, pem_key


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
    plain = load_key(pem_key(key, tmp_path / "plain.pem"), None)
    assert plain.public_pem == load_key(tmp_path / "plain.pem", "ignored").public_pem
    sealed = pem_key(key, tmp_path / "sealed.pem", PASSWORD)
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
    path = pem_key(key, tmp_path / "other.pem")
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
