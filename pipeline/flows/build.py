"""One variant built in a session: its bases pinned, its recipe run, the binary copied out
(whether `go build` ran now or came from the cache, and its bytes) and the binary's layer
compressed beside the image's last steps; then delivered (pipeline.flows.deliver)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import dagger
from dagger import dag

from pipeline.clock import Clock
from pipeline.engine.session import Session, uploading
from pipeline.flows import deliver, publish, tarball
from pipeline.flows.reuse import Kept, foreseeable, foreseen
from pipeline.image import buildinfo
from pipeline.image.canonical import prime
from pipeline.recipe import pins
from pipeline.recipe.source import SourceTree
from pipeline.recipe.stages import vet_and_test
from pipeline.recipe.variants import VARIANTS, Built, Target, bases_of
from pipeline.results import RunReport, Step
from pipeline.settings import SCRATCH, Settings


async def _sync_all(containers: Sequence[dagger.Container]) -> None:
    """Evaluate the containers concurrently (the engine schedules the work)."""
    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(container.sync)


async def _pin_bases(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Resolve the go and runtime images to digests (Container.image_ref, read right after
    from_; both at once), hold them to the lock file, and return settings that build from
    the digests."""
    lock = pins.read_lock(settings.lock)
    requested = [
        r for r in dict.fromkeys((settings.go_image, settings.runtime_image)) if r != SCRATCH
    ]
    resolved: dict[str, str] = {}

    async def resolve(image: str) -> None:
        resolved[image] = await dag.container().from_(image).image_ref()

    async with anyio.create_task_group() as group:
        for image in requested:
            group.start_soon(resolve, image)
    pinned = {r: pins.check(r, resolved[r], lock, settings.lock) for r in requested}
    runtime = pinned.get(settings.runtime_image, settings.runtime_image)
    return replace(settings, go_image=pinned[settings.go_image], runtime_image=runtime), pinned


async def _after_build(built: Built, session: Session, temp: Path) -> tuple[str, bytes]:
    """The binary as `go build` left it, copied out of the build stage in a directory of its
    own (Directory.export keeps modification times; nothing runs in a container; the rest of
    its directory, the other binaries of a shared build or naive's source, stays behind). Its
    time, older than the session if the build came from the cache, says "cold" (`go build`
    ran in this session) or "warm"; its bytes hold the build info the SBOM is made from
    (pipeline.image.buildinfo) and the layer the image will hold it in."""
    where = PurePosixPath(built.binary_path)
    copy = temp / "build-output"
    await (
        built.build_stage.directory(str(where.parent))
        .filter(include=[where.name])
        .export(str(copy))
    )

    def read() -> tuple[float, bytes]:
        binary = copy / where.name
        written, data = binary.stat().st_mtime, binary.read_bytes()
        shutil.rmtree(copy)
        return written, data

    written, data = await anyio.to_thread.run_sync(read)
    await session.clock.wait()
    return ("warm" if written < session.started else "cold"), data


async def variant(
    settings: Settings,
    tree: SourceTree,
    session: Session,
    *,
    dissect_images: bool,
    beside: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    kept: Kept | None = None,
    together: tuple[str, ...] = (),
) -> RunReport:
    """Build one variant and export, load, publish and run it as the settings say; `beside`
    starts once the build has succeeded, with its "cold" or "warm", and runs beside the rest
    (cancelled if that fails).
    With `kept` (--watch), the image is made from the tag's last one where it can be, and
    kept for the next. `together`: the main packages one `go build` makes with this one's
    (pipeline.flows.run.images)."""
    original = settings
    settings, pinned = await _pin_bases(settings)
    job = deliver.Job(
        settings=settings,
        original=original,
        pinned=pinned,
        session=session,
        platforms=settings.platforms or (session.native,),
        temp=Path(tempfile.mkdtemp(prefix=f"{settings.variant}-", dir=session.temp)),
        clock=Clock(session.hook, label=settings.tag),
        kept=kept,
    )
    previous = kept.previous(settings, len(job.platforms)) if kept else None

    async def build(current: Settings) -> tuple[Built, tuple[str, bytes], bytes | None]:
        target = Target(current, tree, job.platforms, session.native, job.temp, together)
        built = await VARIANTS[settings.variant].build(target)
        images = (built.image, *built.extras)
        if previous and foreseeable(settings, built) and not (settings.run or settings.load):
            # Made from the last image (tarball.export's swap), the variant's image needs
            # nothing of the engine: only the binary (and any other image) is built.
            images = built.extras
        containers = [c for i in images for c in i.containers]
        async with anyio.create_task_group() as group:
            # The binary is copied out once `go build` is done, beside the image's last steps;
            # the layer that will hold it is compressed beside them too (normalise or
            # swap_last_layer find it in the memo by its digest). Meanwhile pyelftools is
            # imported, for the SBOM's build info, and oras and requests for a push.
            group.start_soon(anyio.to_thread.run_sync, buildinfo.load)
            if settings.publish is not None:
                group.start_soon(anyio.to_thread.run_sync, publish.load)
            group.start_soon(_sync_all, containers)
            facts = await _after_build(built, session, job.temp)
            layer = foreseen(settings, built, facts[1])
            if layer is not None:
                group.start_soon(anyio.to_thread.run_sync, prime, session.compressed, layer)
        return built, facts, layer

    async with anyio.create_task_group() as group:
        # The bases' own layers, for the export: read beside the build (from this machine's
        # store, or their registries).
        wanted = bases_of(settings, job.platforms, session.native)
        group.start_soon(tarball.fetch_bases, settings, wanted, session)
        with job.clock.step("build"):
            built, facts, layer = await uploading(build, settings)
    made = deliver.Made(built, *facts, layer=layer, previous=previous)
    if beside is None:
        return await deliver.variant(job, made, dissect_images=dissect_images)
    async with anyio.create_task_group() as group:
        group.start_soon(beside, made.cache)
        report = await deliver.variant(job, made, dissect_images=dissect_images)
    return report  # noqa: RET504 (returned inside the group, mypy sees no return)


async def tests(settings: Settings, tree: SourceTree, session: Session) -> Step:
    """go vet and go test, timed: the test step."""

    async def test(current: Settings) -> None:
        await vet_and_test(current, tree).sync()

    clock = Clock(session.hook)
    with clock.step("test"):
        await uploading(test, settings)
    return clock.steps[0]
