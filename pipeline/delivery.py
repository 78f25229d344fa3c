"""Delivering what a recipe described: the OCI tarball (made reproducible), the load into
Docker, the push to a registry with the SBOM as its referrer, and what each image measures."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import dagger

from pipeline import buildinfo, docker_cli, sbom
from pipeline.engine import Session
from pipeline.errors import PipelineError, RegistryError
from pipeline.oci import ImageInfo, OCIError, read_image
from pipeline.outputs import atomic_path
from pipeline.report import ImageReport
from pipeline.reproducible import normalise, swap_last_layer
from pipeline.settings import Settings
from pipeline.variants import Image

if TYPE_CHECKING:
    from pipeline.transport import Budget

NO_LOADER = "no supported api for loading image"
T = TypeVar("T")


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
    scratch: Path,
    platforms: Sequence[str],
    session: Session,
    epoch: int | None,
    *,
    swap: tuple[Path, bytes] | None = None,
) -> tuple[ImageInfo, Path]:
    """Export the image as an OCI tarball, made reproducible when an epoch is given, and read
    it back. It lands at `destination` (atomically) or, without one, in `scratch`. With an
    epoch and `swap` (an image this session made, and the tar of a layer): the image is known
    to be that one with its last layer replaced by this one (the same recipe, settings and
    bases; another binary), and is made from it here instead of exported by the engine."""
    head, *rest = image.containers
    target = destination or scratch / f"{image.ref.replace(':', '-')}.tar"
    with atomic_path(target) as tmp:
        if epoch is None:
            await head.export(str(tmp), platform_variants=rest)
        else:
            raw = scratch / "engine-export.tar"
            swapped = False
            if swap is not None:
                previous, layer = swap
                made = functools.partial(
                    swap_last_layer,
                    previous,
                    tmp,
                    layer,
                    epoch=epoch,
                    ref_name=image.ref,
                    memo=session.canonical,
                    layers=session.layers,  # read_image below reads none of them again
                )
                # An image kept that cannot be read (gone, cut short) costs the engine's export.
                with contextlib.suppress(OCIError, OSError, KeyError, ValueError):
                    await anyio.to_thread.run_sync(made)
                    swapped = True
            if not swapped:
                # normalise compresses every layer itself: the engine need not, nor we undo it.
                await head.export(
                    str(raw),
                    platform_variants=rest,
                    forced_compression=dagger.ImageLayerCompression.Uncompressed,
                )
                await anyio.to_thread.run_sync(
                    functools.partial(
                        normalise,
                        raw,
                        tmp,
                        epoch=epoch,
                        ref_name=image.ref,
                        memo=session.canonical,
                        layers=session.layers,
                    )
                )
                raw.unlink()
        try:
            info = await anyio.to_thread.run_sync(read_image, tmp, session.layers)
        except OCIError as err:
            raise PipelineError(f"the exported image is unreadable: {err}") from err
        _check_platforms(image, info, platforms)
    return info, target


async def base_info(image: Image, session: Session) -> ImageInfo | None:
    """The base image, exported and read once per session (None for scratch)."""
    if image.base is None:
        return None
    async with session.lock:
        if image.base_ref not in session.bases:
            path = session.scratch / f"base-{len(session.bases)}.tar"
            await image.base.export(str(path))
            try:
                session.bases[image.base_ref] = await anyio.to_thread.run_sync(
                    read_image, path, session.layers
                )
            except OCIError as err:
                raise PipelineError(f"base image {image.base_ref} is unreadable: {err}") from None
            path.unlink()
        return session.bases[image.base_ref]


async def load(image: Image, index: int, tarball: Path | None, scratch: Path) -> str:
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
        tarball = scratch / "load.tar"
        await container.export(str(tarball))
    return await anyio.to_thread.run_sync(docker_cli.load, tarball, image.ref)


def sbom_document(binary: bytes, settings: Settings, info: ImageInfo, tag: str) -> bytes:
    """The SPDX SBOM of a reproducible image (named `tag`), from its binary's build info."""
    assert settings.provenance is not None
    subject = sbom.Subject(
        name=tag,
        digest=info.digest,
        base=None if settings.scratch else settings.runtime_image,
        epoch=settings.provenance.epoch,
    )
    try:
        found = buildinfo.read(binary)
    except buildinfo.BuildInfoError as err:
        raise PipelineError(f"the binary's Go build info is unreadable: {err}") from None
    return sbom.build_sbom(found, subject)


async def in_thread(work: Callable[[], T], budget: Budget) -> T:
    """`work()` in a daemon thread of its own, awaited: a push that is interrupted or over
    its budget is told to stop (budget.stop), and it never keeps the process from exiting
    (anyio's worker threads would: they are joined at exit)."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(work())
        except BaseException as err:  # noqa: BLE001 (handed to the awaiting task, raised there)
            failure.append(err)
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
                anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=body, name="pipeline-push", daemon=True).start()
    try:
        await done.wait()
    finally:
        budget.stop.set()
    if failure:
        raise failure[0]
    return outcome[0]


async def publish(
    image: Image, settings: Settings, tarball: Path, info: ImageInfo, document: bytes | None
) -> tuple[str, str | None]:
    """Push the exported image as it is (its digest kept), then its SBOM as a referrer, within
    --push-timeout. The pushed reference with its digest, and the SBOM's fallback tag (None
    without an SBOM)."""
    from pipeline import registry, transport  # oras and requests: only a push needs them

    ref = settings.publish
    assert ref is not None
    login = transport.Login.of(settings)
    budget = transport.Budget.of(settings.push_timeout)

    def push() -> tuple[str, str | None]:
        pushed = registry.push_image(
            tarball, ref, login, budget, ref_name=image.ref, digest=info.digest
        )
        if document is None or settings.provenance is None:
            return pushed, None
        subject = {"mediaType": info.media_type, "digest": info.digest, "size": info.size}
        tag = registry.push_sbom(
            document,
            ref,
            login,
            budget,
            subject=subject,
            media_type=sbom.MEDIA_TYPE,
            created=settings.provenance.created,
        )
        return pushed, tag

    return await bounded(push, budget, settings.push_timeout, ref.registry)


async def bounded(work: Callable[[], T], budget: Budget, seconds: float, registry: str) -> T:
    """`work()` (a registry's) in a thread of its own, stopped after `seconds`."""
    try:
        with anyio.fail_after(seconds):
            return await in_thread(work, budget)
    except TimeoutError:
        raise RegistryError(
            f"registry {registry} did not finish within {seconds:g}s: is it up, is the "
            "address right? (--push-timeout)"
        ) from None


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
