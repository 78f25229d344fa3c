"""The image as an OCI tarball: exported by the engine (or made from the last one, for
--watch) and made reproducible (pipeline.image.normalise), the bases' own layers it is made
with, what it measures, and its load into the local Docker."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import anyio
import dagger

from pipeline.engine.session import Session
from pipeline.errors import PipelineError
from pipeline.flows import docker_cli
from pipeline.image.layout import Bases
from pipeline.image.normalise import normalise, swap_last_layer
from pipeline.image.oci import ImageInfo, OCIError, read_image
from pipeline.outputs import atomic_path, cache_home
from pipeline.recipe.variants import Image
from pipeline.refs import Platform
from pipeline.registry import bases
from pipeline.registry.access import Deadline
from pipeline.registry.threads import bounded
from pipeline.results import ImageReport
from pipeline.settings import Settings

NO_LOADER = "no supported api for loading image"


def _check_platforms(image: Image, info: ImageInfo, platforms: Sequence[str]) -> None:
    """A base image without a requested platform silently yields another one: refuse that."""
    found = {m.platform for m in info.manifests}
    missing = [p for p in platforms if p not in found]
    if len(image.containers) == len(platforms) and missing:
        raise PipelineError(
            f"{image.ref}: no {', '.join(missing)} image came out (got {', '.join(sorted(found))});"
            " the base image probably lacks that platform: use a multi-platform base or scratch"
        )


async def export(
    image: Image,
    destination: Path | None,
    temp: Path,
    platforms: Sequence[str],
    session: Session,
    epoch: int | None,
    *,
    base_layers: Bases | None = None,
    swap: tuple[Path, bytes] | None = None,
) -> tuple[ImageInfo, Path]:
    """Export the image as an OCI tarball and read it back: its base's layers those of
    `base_layers` (platform → the base's layers, as its registry serves them), its own layers
    compressed canonically, and everything else reproducible where an epoch is given (the
    config's times stay the engine's without one). It lands at `destination` (atomically)
    or, without one, in `temp`. With an epoch and `swap` (an image this session made, and
    the tar of a layer): the image is known to be that one with its last layer replaced by
    this one (the same recipe, settings and bases; another binary), and is made from it here
    instead of exported by the engine."""
    head, *rest = image.containers
    target = destination or temp / f"{image.ref.replace(':', '-')}.tar"
    # read_image below reads none of the layers again (session.layers).
    memo, layers = session.compressed, session.layers
    with atomic_path(target) as tmp:
        swapped = False
        if swap is not None and epoch is not None:
            previous, layer = swap
            made = functools.partial(
                swap_last_layer, previous, tmp, layer,
                epoch=epoch, ref_name=image.ref, memo=memo, layers=layers, bases=base_layers,
            )  # fmt: skip
            # An image kept that cannot be read (gone, cut short) costs the engine's export.
            with contextlib.suppress(OCIError, OSError, KeyError, ValueError):
                await anyio.to_thread.run_sync(made)
                swapped = True
        if not swapped:
            raw = temp / "engine-export.tar"
            # Gzipped, as the base's registry serves its layers: the engine then sends a
            # base layer as the blob it pulled (the Go image's is 233 MB, not 663 MB written
            # out anew: a warm naive run took 1.0 s of the engine's CPU, not 2.5-2.7, and 3.3 s
            # of the machine's, not 5.6-6.0). An engine restarted with its state kept no
            # longer has that blob and compresses the layer again once (22 s of its CPU for
            # the Go image's). normalise recompresses the layers we added canonically and
            # takes the base's as its registry serves them, whatever the engine sent.
            await head.export(
                str(raw),
                platform_variants=rest,
                forced_compression=dagger.ImageLayerCompression.Gzip,
            )
            try:
                await anyio.to_thread.run_sync(
                    functools.partial(
                        normalise,
                        raw,
                        tmp,
                        epoch=epoch,
                        ref_name=image.ref,
                        memo=memo,
                        layers=layers,
                        bases=base_layers,
                    )
                )
            except OCIError as err:
                raise PipelineError(f"the exported image {image.ref} is unusable: {err}") from err
            finally:
                raw.unlink(missing_ok=True)
        try:
            info = await anyio.to_thread.run_sync(read_image, tmp, session.layers)
        except OCIError as err:
            raise PipelineError(f"the exported image is unreadable: {err}") from err
        _check_platforms(image, info, platforms)
    return info, target


async def fetch_bases(
    settings: Settings, wanted: Sequence[tuple[str, Platform]], session: Session
) -> None:
    """Put the layers of each (pinned base, platform) in `wanted` into session.bases, as
    their registries serve them (pipeline.registry.bases): from this machine's store where it has
    them, else from the registry within --push-timeout."""
    missing = [(r, p) for r, p in wanted if (r, str(p)) not in session.bases]
    if not missing:
        return
    cache = cache_home(os.environ)
    kept = await anyio.to_thread.run_sync(bases.fetch, missing, settings, None, cache)
    session.bases.update(kept)
    missing = [(r, p) for r, p in missing if (r, str(p)) not in kept]
    if not missing:
        return
    deadline = Deadline.of(settings.push_timeout)
    work = functools.partial(bases.fetch, missing, settings, deadline, cache)
    registry = bases.source(missing[0][0], settings).registry
    session.bases.update(await bounded(work, deadline, settings.push_timeout, registry))


async def load(image: Image, index: int, tarball: Path | None, temp: Path) -> str:
    """Put the image into the local Docker: through the engine's image loader where it has
    one, else `docker load` of a single-platform tarball."""
    container = image.containers[index]
    try:
        await container.export_image(image.ref)
    except dagger.QueryError as err:
        if NO_LOADER not in str(err):
            raise
    else:
        return image.ref
    if tarball is None or len(image.containers) > 1:
        tarball = temp / "load.tar"
        await container.export(str(tarball))
    return await anyio.to_thread.run_sync(docker_cli.load, tarball, image.ref)


def image_report(role: str, image: Image, info: ImageInfo, output: str | None) -> ImageReport:
    """What one exported image measures."""
    return ImageReport(
        ref=image.ref,
        role=role,
        digest=info.digest,
        media_type=info.media_type,
        platforms=tuple(m.platform for m in info.manifests),
        uncompressed=info.uncompressed,
        compressed=info.compressed,
        layers=max(len(m.layers) for m in info.manifests),
        output=output,
    )
