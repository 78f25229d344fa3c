"""The image published: pushed to its registry as it is (its digest kept), with its SBOM
made from the binary's build info and pushed as the image's referrer."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.image import buildinfo, sbom
from pipeline.image.layout import Bases
from pipeline.image.oci import ImageInfo
from pipeline.recipe.variants import Image
from pipeline.registry import bases
from pipeline.registry.access import Deadline, Login
from pipeline.registry.threads import bounded
from pipeline.settings import Settings


def sbom_document(binary: bytes, settings: Settings, info: ImageInfo, tag: str) -> bytes:
    """The SPDX SBOM of a reproducible image (named `tag`), from its binary's build info."""
    assert settings.provenance is not None
    subject = sbom.Subject(
        name=tag,
        digest=info.digest,
        base=None if settings.on_scratch else settings.runtime_image,
        epoch=settings.provenance.epoch,
        version=settings.provenance.version,
    )
    try:
        found = buildinfo.read(binary)
    except buildinfo.BuildInfoError as err:
        raise PipelineError(f"the binary's Go build info is unreadable: {err}") from None
    return sbom.build_sbom(found, subject)


def load() -> None:
    """Import what a push needs (oras and requests: about 0.2 s), in a thread beside the
    build, so that the push does not wait for it."""
    from pipeline.registry import referrers, remote, tagging  # noqa: F401


async def publish(
    image: Image,
    settings: Settings,
    tarball: Path,
    info: ImageInfo,
    document: bytes | None,
    base_layers: Bases,
) -> tuple[str, str | None, int]:
    """Push the exported image as it is (its digest kept), then its SBOM as a referrer, within
    --push-timeout. The base's layers (`base_layers`, by platform) are mounted from the base's
    repository where it is on the same registry, not sent. The pushed reference with its
    digest, the SBOM's fallback tag (None without an SBOM) and the image's blob bytes sent."""
    from pipeline.registry import (  # oras and requests: only a push needs them
        referrers,
        remote,
        tagging,
    )

    ref = settings.publish
    assert ref is not None
    login = Login.of(settings)
    deadline = Deadline.of(settings.push_timeout)
    mounts: dict[str, str] = {}
    for base in base_layers.values():
        source = bases.source(base.ref, settings)
        if source.endpoint == ref.endpoint:
            mounts.update((str(layer["digest"]), source.repository) for layer in base.layers)

    def push() -> tuple[str, str | None, int]:
        pushed, sent = remote.push_image(
            tarball, ref, login, deadline, ref_name=image.ref, digest=info.digest, mounts=mounts
        )
        if settings.tags:
            tagging.add_tags(
                tagging.manifest_bytes(tarball, info.digest),
                ref,
                login,
                deadline,
                media_type=info.media_type,
                tags=settings.tags,
                pushed=f"{ref.repository}:{ref.push_tag}",
            )
        if document is None or settings.provenance is None:
            return pushed, None, sent
        subject = {"mediaType": info.media_type, "digest": info.digest, "size": info.size}
        tag = referrers.push_sbom(
            document,
            ref,
            login,
            deadline,
            subject=subject,
            media_type=sbom.MEDIA_TYPE,
            created=settings.provenance.created,
        )
        return pushed, tag, sent

    return await bounded(push, deadline, settings.push_timeout, ref.registry)
