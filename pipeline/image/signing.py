"""Signatures that cosign verifies, as bytes: the simple-signing payload of an image's
signature, in-toto statements, DSSE envelopes and Sigstore bundles (v0.3) of them, signed by a
key that can sign (pipeline.image.keys opens one), and where they go (SignatureFormat). No
network: the registry room pushes them (pipeline.registry.signatures, bundles). Light to
import: the CLI reads SignatureFormat before any key is opened."""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.errors import UsageError
from pipeline.image.layout import dump

SIGN_PASSWORD_ENV = "PIPELINE_SIGN_PASSWORD"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"  # the statement of a bundle's signature
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT = "https://in-toto.io/Statement/v1"


class SignatureFormat(enum.StrEnum):
    """Where signatures go: cosign's `.sig`/`.att` tags, which every verifier reads; Sigstore
    bundles as OCI 1.1 referrers, which cosign v3 writes and v4 will read alone; or both."""

    LEGACY = "legacy"
    BUNDLE = "bundle"
    BOTH = "both"

    @property
    def legacy(self) -> bool:
        return self is not SignatureFormat.BUNDLE

    @property
    def bundles(self) -> bool:
        return self is not SignatureFormat.LEGACY


class SigningKeyError(UsageError):
    """--sign-key cannot be used: unreadable, not a key, a wrong password, not EC P-256."""


class Signer(Protocol):
    """What signs (pipeline.image.keys.SigningKey): DER ECDSA signatures, their check, and
    the public key's hint."""

    def sign(self, data: bytes) -> bytes: ...

    def verifies(self, data: bytes, signature: bytes) -> bool: ...

    @property
    def hint(self) -> str: ...


@dataclass(frozen=True)
class Attestation:
    """An in-toto statement to sign and attach: its predicate type and its bytes."""

    predicate_type: str
    statement: bytes


@dataclass(frozen=True)
class Signed:
    """What signing wrote: each signed digest's `.sig` manifest digest and the `.att`'s
    (legacy), the bundles' referrer manifests (bundle)."""

    signatures: dict[str, str]
    attestations: str | None
    bundles: tuple[str, ...] = ()


def simple_signing(repository: str, digest: str) -> bytes:
    """The payload cosign signs for an image: the repository and the manifest's digest."""
    return dump(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )


def statement(subjects: dict[str, str], predicate_type: str, predicate: object) -> bytes:
    """An in-toto Statement v1 about `subjects` (name → sha256:… digest; a subject named ""
    has no name, as cosign's signature statement)."""
    return dump(
        {
            "_type": STATEMENT,
            "subject": [
                {**({"name": name} if name else {}), "digest": {"sha256": _hex(digest)}}
                for name, digest in subjects.items()
            ],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _dsse(body: bytes, key: Signer, **keyid: str) -> dict[str, object]:
    signature = base64.b64encode(key.sign(pae(IN_TOTO, body))).decode()
    return {
        "payloadType": IN_TOTO,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{**keyid, "sig": signature}],
    }


def envelope(body: bytes, key: Signer) -> bytes:
    """`body` (an in-toto statement) in a DSSE envelope signed by `key`, as cosign attaches
    it under the `.att` tag."""
    return dump(_dsse(body, key, keyid=""))


def bundle(body: bytes, key: Signer) -> bytes:
    """`body` (an in-toto statement) signed by `key` in a Sigstore bundle v0.3, as cosign v3
    writes one for a key: no transparency log entry, no timestamp, the key named by its hint."""
    dsse = _dsse(body, key)
    return dump(
        {
            "mediaType": BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": key.hint}},
            "dsseEnvelope": {
                "payload": dsse["payload"],
                "payloadType": dsse["payloadType"],
                "signatures": dsse["signatures"],
            },
        }
    )


def signed_by(document: bytes, key: Signer) -> bool:
    """Whether the DSSE envelope `document` carries a signature `key` made."""
    try:
        found: dict[str, Any] = json.loads(document)
        body = base64.b64decode(found["payload"])
        signed = pae(str(found["payloadType"]), body)
        signatures = [base64.b64decode(s["sig"]) for s in found["signatures"]]
    except (ValueError, KeyError, TypeError):
        return False
    return any(key.verifies(signed, s) for s in signatures)
