"""The flows: one build (`run`), every variant side by side (`compare`), the same build twice
(`verify`) and a build on every change (`watch`). Each opens one session (pipeline.engine.session),
runs the variant's recipe (pipeline.recipe.variants) and delivers what it described
(pipeline.flows.deliver), timing each step."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import dagger
import watchfiles
from dagger import dag

from pipeline.clock import Clock, StepHook
from pipeline.engine.session import Session, in_session, translate, uploading
from pipeline.errors import PipelineError
from pipeline.flows import deliver, gocache
from pipeline.image import buildinfo
from pipeline.image.anatomy import dissect
from pipeline.image.canonical import file_layer, prime
from pipeline.image.diff import base_mismatches, differences
from pipeline.image.oci import BaseLayers, ImageInfo, same_platform
from pipeline.outputs import write_bytes
from pipeline.recipe import pins
from pipeline.recipe.source import SourceTree, is_build_input
from pipeline.recipe.stages import WORKDIR, vet_and_test
from pipeline.recipe.variants import VARIANTS, Built, Image, Target, bases_of
from pipeline.refs import Platform
from pipeline.results import GoCache, ImageReport, RunReport, Step
from pipeline.settings import SCRATCH, Settings, Variant


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


async def _after_build(built: Built, session: Session, scratch: Path) -> tuple[str, bytes]:
    """The binary as `go build` left it, copied out of the build stage with its directory
    (Directory.export keeps modification times; nothing runs in a container). Its time, older
    than the session if the build came from the cache, says "cold" (`go build` ran in this
    session) or "warm"; its bytes hold the build info the SBOM is made from
    (pipeline.image.buildinfo) and the layer the image will hold it in."""
    where = PurePosixPath(built.binary_path)
    copy = scratch / "build-output"
    await built.build_stage.directory(str(where.parent)).export(str(copy))

    def read() -> tuple[float, bytes]:
        binary = copy / where.name
        written, data = binary.stat().st_mtime, binary.read_bytes()
        shutil.rmtree(copy)
        return written, data

    written, data = await anyio.to_thread.run_sync(read)
    await session.clock.wait()
    return ("warm" if written < session.started else "cold"), data


@dataclass
class _Job:
    """One variant's build in a session, once its bases are pinned."""

    settings: Settings
    session: Session
    platforms: tuple[Platform, ...]
    scratch: Path
    clock: Clock

    @property
    def runnable(self) -> int | None:
        """The index of the engine's own platform, the image that can run and load."""
        native = self.session.native
        return self.platforms.index(native) if native in self.platforms else None


def _foreseeable(job: _Job, built: Built) -> bool:
    """Whether the image's layer that holds the binary can be foreseen from it: it holds
    nothing else and the image is made reproducible."""
    return job.settings.provenance is not None and built.binary_layer is not None


def _foreseen(job: _Job, built: Built, binary: bytes) -> bytes | None:
    """The tar of that layer (pipeline.image.canonical.file_layer); None where not
    foreseeable."""
    provenance, path = job.settings.provenance, built.binary_layer
    if provenance is None or path is None:
        return None
    return file_layer(path, binary, mtime=provenance.epoch)


def _swappable(job: _Job) -> Path | None:
    """The image to make this one from (deliver.export's `swap`): this session's last image
    of the same tag, built from the same settings and bases (only the source read again), of
    one platform; that image differs from this one in the binary's layer alone."""
    kept = job.session.images.get(job.settings.tag)
    if kept is None or len(job.platforms) != 1:
        return None
    settings, tarball = kept
    return tarball if settings == replace(job.settings, reload_source=False) else None


async def _keep(job: _Job, tarball: Path) -> None:
    """A private link to (or copy of) the image just made, for the next build of the tag to
    start from. A link stays what it is: the next image is written under a new name and
    renamed over the output (outputs.atomic_path)."""
    settings = job.settings
    kept = job.session.scratch / f"last-{settings.tag.replace(':', '-')}.tar"

    def keep() -> None:
        kept.unlink(missing_ok=True)
        try:
            kept.hardlink_to(tarball)
        except OSError:  # another file system
            shutil.copyfile(tarball, kept)

    await anyio.to_thread.run_sync(keep)
    job.session.images[settings.tag] = (replace(settings, reload_source=False), kept)


def _base_layers(job: _Job, image: Image, role: str) -> dict[str, BaseLayers]:
    """The layers of the image's base by platform, as deliver.fetch_bases read them: the
    variant's image has the job's platforms, another image the engine's platform."""
    if image.base is None:
        return {}
    platforms = job.platforms if role == "image" else (job.session.native,)
    return {str(p): job.session.bases[image.base_ref, str(p)] for p in platforms}


async def _deliver_images(
    job: _Job, built: Built, layer: bytes | None, previous: Path | None, *, dissect_images: bool
) -> tuple[list[ImageReport], list[tuple[ImageInfo, Path]]]:
    """Export (and load) every image the variant made: their reports, their infos and
    tarballs. `layer` is the tar of the image's binary layer, where it can be foreseen;
    `previous` the image to make the variant's image from with it (_swappable)."""
    settings, session, runnable = job.settings, job.session, job.runnable
    reports: list[ImageReport] = []
    infos: list[tuple[ImageInfo, Path]] = []
    for role, image in (("image", built.image), *(("builder", e) for e in built.extras)):
        destination = settings.output if role == "image" else settings.builder_output
        bases = _base_layers(job, image, role)
        # The variant's own image is made reproducible; the builder pattern's build image,
        # like the naive one, is what it is.
        epoch = settings.provenance.epoch if settings.provenance and role == "image" else None
        swap = (previous, layer) if role == "image" and previous and layer else None
        with job.clock.step("export" if role == "image" else f"export {role}") as running:
            info, tarball = await deliver.export(
                image,
                destination,
                job.scratch,
                [str(p) for p in job.platforms],
                session,
                epoch,
                base_layers=bases,
                swap=swap,
            )
            running.size = info.compressed
        if session.watching and role == "image" and layer is not None and len(job.platforms) == 1:
            await _keep(job, tarball)
        infos.append((info, tarball))
        report = deliver.image_report(role, image, info, str(destination) if destination else None)
        if dissect_images:
            shown = info.manifests[runnable or 0]
            base = next(
                (b for b in bases.values() if same_platform(b.platform, shown.platform)), None
            )
            anatomy = dissect(shown, base.diff_ids if base else (), f"{WORKDIR}/{settings.name}")
            report = replace(report, anatomy=anatomy)
        if settings.load and runnable is not None:
            with job.clock.step("load" if role == "image" else f"load {role}"):
                index = runnable if len(image.containers) > 1 else 0
                loaded = await deliver.load(image, index, tarball, job.scratch)
            report = replace(report, loaded=loaded)
        reports.append(report)
    return reports, infos


def _skipped(settings: Settings, runnable: int | None, native: Platform) -> tuple[str, ...]:
    """A note for --load and --run when no image can run on the engine's platform."""
    if runnable is not None or not (settings.load or settings.run):
        return ()
    skipped = " and ".join(
        w for w, on in (("--load", settings.load), ("--run", settings.run)) if on
    )
    return (f"{skipped} skipped: no {native} image (the engine's own) among --platform",)


async def _build_variant(
    settings: Settings,
    tree: SourceTree,
    session: Session,
    *,
    dissect_images: bool,
    beside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> RunReport:
    """Build one variant and export, load, publish and run it as the settings say; `beside`
    starts once the build has succeeded and runs beside the rest (cancelled if that fails)."""
    original = settings
    settings, pinned = await _pin_bases(settings)
    job = _Job(
        settings=settings,
        session=session,
        platforms=settings.platforms or (session.native,),
        scratch=Path(tempfile.mkdtemp(prefix=f"{settings.variant}-", dir=session.scratch)),
        clock=Clock(session.hook, label=settings.tag),
    )

    async def build(current: Settings) -> tuple[Built, tuple[str, bytes], bytes | None]:
        target = Target(current, tree, job.platforms, session.native, job.scratch)
        built = await VARIANTS[settings.variant](target)
        images = (built.image, *built.extras)
        if previous and _foreseeable(job, built) and not (settings.run or settings.load):
            # Made from the last image (deliver.export's swap), the variant's image needs
            # nothing of the engine: only the binary (and any other image) is built.
            images = built.extras
        containers = [c for i in images for c in i.containers]
        async with anyio.create_task_group() as group:
            # The binary is copied out once `go build` is done, beside the image's last steps;
            # the layer that will hold it is compressed beside them too (normalise or
            # swap_last_layer find it in the memo by its digest). Meanwhile pyelftools is
            # imported, for the SBOM's build info.
            group.start_soon(anyio.to_thread.run_sync, buildinfo.load)
            group.start_soon(_sync_all, containers)
            facts = await _after_build(built, session, job.scratch)
            layer = _foreseen(job, built, facts[1])
            if layer is not None:
                group.start_soon(anyio.to_thread.run_sync, prime, session.canonical, layer)
        return built, facts, layer

    previous = _swappable(job)
    async with anyio.create_task_group() as group:
        # The bases' own layers, for the export: read beside the build (from this machine's
        # store, or their registries).
        wanted = bases_of(settings, job.platforms, session.native)
        group.start_soon(deliver.fetch_bases, settings, wanted, session)
        with job.clock.step("build"):
            built, facts, layer = await uploading(build, settings)
    if beside is None:
        return await _deliver_variant(
            job, built, facts, layer, previous, original, pinned, dissect_images=dissect_images
        )
    async with anyio.create_task_group() as group:
        group.start_soon(beside)
        report = await _deliver_variant(
            job, built, facts, layer, previous, original, pinned, dissect_images=dissect_images
        )
    return report  # noqa: RET504 (returned inside the group, mypy sees no return)


async def _deliver_variant(
    job: _Job,
    built: Built,
    facts: tuple[str, bytes],
    layer: bytes | None,
    previous: Path | None,
    original: Settings,
    pinned: dict[str, str],
    *,
    dissect_images: bool,
) -> RunReport:
    """Export, load, publish and run what the build made, as the settings say; `facts` are
    the build's cache state and binary (_after_build), `layer` its foreseen layer (_foreseen),
    `previous` the image to make its image from (_swappable)."""
    settings, session = job.settings, job.session
    cache, binary = facts
    reports, infos = await _deliver_images(
        job, built, layer, previous, dissect_images=dissect_images
    )
    info, tarball = infos[0]
    document = None
    if settings.provenance is not None and (
        settings.output is not None or settings.publish is not None  # somewhere to put it
    ):
        with job.clock.step("sbom"):
            document = deliver.sbom_document(binary, settings, info, original.tag)
    if document is not None and settings.output is not None:
        sbom_path = settings.output.with_name(settings.output.name + ".spdx.json")
        write_bytes(sbom_path, document)
        reports[0] = replace(reports[0], sbom=str(sbom_path))

    if settings.publish is not None:
        with job.clock.step("publish") as running:
            published, referrer, sent = await deliver.publish(
                built.image,
                settings,
                tarball,
                info,
                document,
                _base_layers(job, built.image, "image"),
            )
            running.size = sent
        reports[0] = replace(reports[0], published=published, sbom_tag=referrer, sent=sent)
    if settings.lock is not None:
        pins.write_lock(settings.lock, {**pinned, **session.pins})

    printed = None
    if settings.run and job.runnable is not None:
        with job.clock.step("run"):
            runner = built.image.containers[job.runnable].with_exec([], use_entrypoint=True)
            printed = await runner.stdout()

    return RunReport(
        variant=str(settings.variant),
        go_image=original.go_image,
        runtime_image=original.runtime_image,
        bases=pinned,
        platforms=tuple(str(p) for p in job.platforms),
        images=tuple(reports),
        printed=printed,
        steps=tuple(job.clock.steps),
        cache=cache,
        notes=_skipped(settings, job.runnable, session.native),
    )


async def _vet_and_test(settings: Settings, tree: SourceTree, session: Session) -> Step:
    async def test(current: Settings) -> None:
        await vet_and_test(current, tree).sync()

    clock = Clock(session.hook)
    with clock.step("test"):
        await uploading(test, settings)
    return clock.steps[0]


async def run(settings: Settings, tree: SourceTree, hook: StepHook | None = None) -> RunReport:
    """Build one variant in one Dagger session and return what it made."""

    async def body(session: Session) -> RunReport:
        async with anyio.create_task_group() as group:
            if gocache.wanted(settings):  # the restore runs in the helper image meanwhile
                group.start_soon(_pull, settings.go_image)
            restored = await _restore_cache(settings, session)
            return await after_restore(session, restored)
        raise AssertionError("unreachable: the task group returns or raises")

    async def after_restore(session: Session, restored: _Restored) -> RunReport:
        tested = (await _vet_and_test(settings, tree, session),) if settings.test else ()
        started = restored.go_cache
        clock = Clock(session.hook, label=settings.tag)
        saved: list[GoCache] = []

        async def save() -> None:  # beside the export and publish: the compile is done
            assert started is not None
            with clock.step("save cache") as running:
                platforms = settings.platforms or (session.native,)
                saved.append(await gocache.save(settings, tree, session, platforms, started))
                running.size = saved[0].saved_size

        saves = started is not None and settings.cache_to is not None
        report = await _build_variant(
            settings, tree, session, dissect_images=False, beside=save if saves else None
        )
        report = replace(
            report,
            steps=(*restored.steps, *tested, *report.steps, *clock.steps),
            go_cache=saved[0] if saved else started,
        )
        if started is not None and settings.variant is not Variant.MULTISTAGE:
            note = (
                f"{settings.variant} compiles without cache volumes, as the write-up's "
                "Dockerfile does: the Go cache serves go vet and go test only"
            )
            report = replace(report, notes=(*report.notes, note))
        return report

    return await in_session(body, settings, hook)


async def _pull(image: str) -> None:
    """Have the engine pull and unpack `image` (no exec: its root directory listed), so that
    on a new runner the Go image comes in while the caches are restored; a failure is the
    build's to report."""
    with contextlib.suppress(dagger.QueryError):
        await dag.container().from_(image).rootfs().entries()


@dataclass(frozen=True)
class _Restored:
    go_cache: GoCache | None
    steps: tuple[Step, ...]


async def _restore_cache(settings: Settings, session: Session) -> _Restored:
    """With --cache-from/--cache-to: what the build's Go caches start from (restored from the
    registry into empty volumes where there is a cache to restore)."""
    if not gocache.wanted(settings):
        return _Restored(None, ())
    clock = Clock(session.hook, label=settings.tag)
    with clock.step("restore cache") as running:
        platforms = settings.platforms or (session.native,)
        started = await gocache.restore(settings, session, platforms)
        running.size = started.restored_size
    return _Restored(started, tuple(clock.steps))


async def compare(
    jobs: Sequence[Settings], tree: SourceTree, hook: StepHook | None = None
) -> tuple[RunReport, ...]:
    """Build every job in one session, concurrently, each image taken apart."""

    async def body(session: Session) -> tuple[RunReport, ...]:
        tested = (await _vet_and_test(jobs[0], tree, session),) if jobs[0].test else ()
        results: dict[int, RunReport] = {}

        async def one(index: int, settings: Settings) -> None:
            results[index] = await _build_variant(settings, tree, session, dissect_images=True)

        async with anyio.create_task_group() as group:
            for index, settings in enumerate(jobs):
                group.start_soon(one, index, settings)
        return tuple(
            replace(results[i], steps=(*tested, *results[i].steps)) for i in range(len(jobs))
        )

    return await in_session(body, jobs[0], hook)


@dataclass(frozen=True)
class Verdict:
    """Two builds of the same inputs, the second with every step run again."""

    first: RunReport
    second: RunReport
    differences: tuple[str, ...]

    @property
    def reproducible(self) -> bool:
        return not self.differences


async def verify(settings: Settings, tree: SourceTree, hook: StepHook | None = None) -> Verdict:
    """Build twice in one session, the second time forcing every build step to run again
    (new source upload, cache-busted toolchain), and compare the two images."""

    async def body(session: Session) -> Verdict:
        once = replace(
            settings,
            output=session.scratch / "first.tar",
            load=False,
            publish=None,
            run=False,
            cache_to=None,
        )
        restored = await _restore_cache(once, session)
        first = await _build_variant(once, tree, session, dissect_images=False)
        first = replace(first, go_cache=restored.go_cache)
        # Fresh Go caches, no --cache-from: a poisoned cache shows up as a difference.
        again = replace(
            once,
            output=session.scratch / "second.tar",
            cache_bust=uuid.uuid4().hex,
            cache_from=None,
        )
        second = await _build_variant(again, tree, session, dissect_images=False)
        found = await anyio.to_thread.run_sync(
            differences, session.scratch / "first.tar", session.scratch / "second.tar"
        )
        # Each build holds its base as the base's registry serves it, layer for layer.
        pinned = first.bases.get(settings.runtime_image)
        bases = {p: session.bases[pinned, p] for p in first.platforms} if pinned else {}
        for build, tarball in (("first", "first.tar"), ("second", "second.tar")):
            wrong = await anyio.to_thread.run_sync(
                base_mismatches, session.scratch / tarball, bases
            )
            found.extend(f"{build} build: {line}" for line in wrong)
        return Verdict(first, second, tuple(found))

    return await in_session(body, settings, hook)


async def watch(
    settings: Settings,
    tree: SourceTree,
    show: Callable[[RunReport | PipelineError], None],
    hook: StepHook | None = None,
) -> None:
    """Keep one session open; build now, then again after each change to a build input,
    showing each result (or failure) as it comes. Runs until interrupted."""

    def relevant(change: watchfiles.Change, path: str) -> bool:
        return is_build_input(Path(path).relative_to(tree.root.resolve()))

    changed = anyio.Event()
    armed = anyio.Event()

    async def watcher() -> None:
        # The watcher runs from before the first build: a change made during a build (or
        # just after its result is shown) is not lost. watchfiles arms on first iteration.
        # It yields once a poll every `step` ms finds no new change (debounce: 400 ms at most);
        # a save that comes in several writes further apart makes a second rebuild, no more.
        changes = watchfiles.awatch(
            tree.root.resolve(),
            watch_filter=relevant,
            step=10,
            debounce=400,
            rust_timeout=500,
            yield_on_timeout=True,
        )
        async for batch in changes:
            armed.set()
            if batch:
                changed.set()

    async def body(session: Session) -> None:
        session.watching = True  # each image is kept for the next build to start from
        async with anyio.create_task_group() as group:
            group.start_soon(watcher)
            await armed.wait()
            await builds(session)

    async def builds(session: Session) -> None:
        nonlocal changed
        current = settings
        # --cache-to is for one-shot builds; what the first build started from is shown.
        restored = await _restore_cache(settings, session)
        while True:
            try:
                tested = (await _vet_and_test(current, tree, session),) if current.test else ()
                report = await _build_variant(current, tree, session, dissect_images=False)
                steps = (*restored.steps, *tested, *report.steps)
                show(replace(report, steps=steps, go_cache=restored.go_cache))
                restored = _Restored(None, ())
            except (PipelineError, dagger.DaggerError, ExceptionGroup) as err:
                failure = translate(err, settings)
                if not isinstance(failure, PipelineError):
                    raise failure from None
                show(failure)
            # Wait for the next change; from now on the source is read from the host anew.
            await changed.wait()
            changed = anyio.Event()
            current = replace(settings, reload_source=True)

    await in_session(body, settings, hook)
