"""The key that signs: a cosign key file (`cosign generate-key-pair`'s, sealed with scrypt and
nacl/secretbox) or an EC P-256 PEM, opened once, and its deterministic ECDSA P-256/SHA-256
signatures (RFC 6979: the same bytes signed again give the same signature, so a second
publish adds nothing). cryptography and PyNaCl are imported here only, so that a run without
--sign-key never loads them."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.image.signing import SIGN_PASSWORD_ENV, SigningKeyError

# cosign generate-key-pair's PEM types (the older name first): JSON around a PKCS#8 key,
# sealed with nacl/secretbox under a key that scrypt derives from the password.
COSIGN_PEMS = ("ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY")
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s+(.*?)\s*-----END \1-----", re.DOTALL)
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


@dataclass(frozen=True)
class SigningKey:
    """An EC P-256 private key; its repr hides it."""

    private: ec.EllipticCurvePrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        """The DER ECDSA signature of SHA-256(data), deterministic (RFC 6979)."""
        return self.private.sign(data, _ECDSA)

    def verifies(self, data: bytes, signature: bytes) -> bool:
        try:
            self.private.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def hint(self) -> str:
        """The public key's SHA-256, base64: a bundle's public-key hint, as cosign writes it."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _wrong_password(path: Path) -> SigningKeyError:
    return SigningKeyError(f"--sign-key {path}: wrong password (check ${SIGN_PASSWORD_ENV})")


def _open_cosign(body: bytes, password: str, path: Path) -> bytes:
    """The PKCS#8 DER inside a cosign key file's JSON (kdf scrypt, cipher nacl/secretbox)."""
    import nacl.exceptions  # only a cosign key file needs it
    import nacl.secret

    try:
        sealed = json.loads(base64.b64decode(body))
        kdf, cipher = sealed["kdf"], sealed["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(sealed["ciphertext"])
        known = kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox"
    except (ValueError, KeyError, TypeError):
        raise SigningKeyError(f"--sign-key {path}: not a cosign key file (its JSON)") from None
    if not known:
        raise SigningKeyError(
            f"--sign-key {path}: sealed with {kdf['name']} and {cipher['name']}; only scrypt "
            "and nacl/secretbox (cosign generate-key-pair's) are read"
        )
    secret = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n + (1 << 20)
    )
    try:
        return bytes(nacl.secret.SecretBox(secret).decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError:
        raise _wrong_password(path) from None


def _open_pem(data: bytes, password: str | None, path: Path) -> object:
    """A PEM private key; an encrypted PKCS#8 one opened with `password`."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        return serialization.load_pem_private_key(data, password=None)
    if not password:
        raise SigningKeyError(
            f"--sign-key {path}: the key is encrypted: give its password in ${SIGN_PASSWORD_ENV}"
        )
    try:
        return serialization.load_pem_private_key(data, password.encode())
    except ValueError:
        raise _wrong_password(path) from None


def _private_key(data: bytes, password: str | None, path: Path) -> object:
    found = _PEM.search(data)
    if found is None:
        raise SigningKeyError(
            f"--sign-key {path}: not a PEM key: give a cosign key file (cosign "
            "generate-key-pair) or an EC P-256 private key PEM"
        )
    kind = found.group(1).decode()
    try:
        if kind in COSIGN_PEMS:
            der = _open_cosign(found.group(2), password or "", path)
            return serialization.load_der_private_key(der, password=None)
        return _open_pem(data, password, path)
    except SigningKeyError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(f"--sign-key {path}: its {kind} is not a readable key") from None


def load_key(path: Path, password: str | None) -> SigningKey:
    """The key in `path`: a cosign key file, opened with `password`, or a PEM private key
    (PKCS#8, encrypted or not, or SEC1). SigningKeyError, one line, if it cannot sign."""
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise SigningKeyError(
            f"--sign-key {path} {what}: give the path of a key file (KMS URIs and keyless "
            "signing are not supported)"
        )
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SigningKeyError(f"--sign-key {path}: cannot read it ({err.strerror})") from None
    key = _private_key(data, password, path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        if isinstance(key, ec.EllipticCurvePrivateKey):
            kind = f"an EC {key.curve.name}"
        else:
            kind = "an " + type(key).__name__.lstrip("_").removesuffix("PrivateKey")
        raise SigningKeyError(
            f"--sign-key {path}: {kind} key; cosign keys here are ECDSA P-256 (make one with "
            "`cosign generate-key-pair`)"
        )
    return SigningKey(key)
