"""Sigstore bundles (v0.3) as OCI 1.1 referrers of the image they sign, as cosign v3 writes
them: one manifest per bundle (artifactType the bundle's media type, an empty config, the
bundle as its one layer, the image as its subject). A registry with the referrers API lists
them itself; on one without it they are listed under the fallback tag `sha256-<hex>`, with
their artifactType (Kyverno and buildx skip entries without one), beside the SBOM and what
other tools listed there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.image import signing
from pipeline.image.oci import INDEX
from pipeline.registry.answers import check_answer
from pipeline.registry.referrers import push_referrer
from pipeline.registry.transport import Client

CONTENT = "dev.sigstore.bundle.content"
PREDICATE = "dev.sigstore.bundle.predicateType"
CREATED = "org.opencontainers.image.created"
_NO_API = (400, 404, 405, 406)  # what a registry without the referrers API answers


def has_referrers_api(client: Client, digest: str) -> bool:
    """Whether the registry answers the referrers API for `digest` (with an image index)."""
    url = f"{client.prefix}://{client.ref.endpoint}/v2/{client.ref.repository}/referrers/{digest}"
    answer = client.do_request(url, "GET", headers={"Accept": INDEX})
    if answer.status_code in _NO_API:
        return False
    check_answer(answer, client.ref, "GET of the referrers")
    return answer.headers.get("Content-Type", "").split(";")[0].strip() == INDEX


def attach(
    client: Client,
    subject: dict[str, Any],
    bundles: Sequence[tuple[str, bytes]],
    *,
    created: str | None,
    api: bool,
) -> list[str]:
    """Push each of `bundles` (predicate type, bundle) as a referrer of `subject` (the
    image's descriptor), listed under the fallback tag unless the registry has the referrers
    API (`api`). The referrers' digests."""
    pushed: list[str] = []
    for predicate_type, data in bundles:
        annotations = {CONTENT: "dsse-envelope", PREDICATE: predicate_type}
        if created is not None:
            annotations[CREATED] = created
        entry, _ = push_referrer(
            client, subject, data, media_type=signing.BUNDLE, annotations=annotations,
            named=f"the {predicate_type} bundle", listed=not api,
        )  # fmt: skip
        pushed.append(str(entry["digest"]))
    return pushed
