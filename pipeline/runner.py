"""The only module that opens a Dagger session and awaits: it runs the variant's recipe, then
exports, loads, publishes and runs what the recipe described, timing each step."""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import anyio
import dagger
import watchfiles
from dagger import dag

from pipeline import docker_cli, pins, sbom
from pipeline.anatomy import dissect
from pipeline.errors import (
    BuildFailed,
    EngineUnavailable,
    OutputError,
    PipelineError,
    RegistryError,
    UsageError,
    unreachable_reason,
)
from pipeline.oci import ImageInfo, Layer, OCIError, read_image
from pipeline.outputs import atomic_path, write_bytes
from pipeline.report import ImageReport, RunReport, Step
from pipeline.reproducible import differences, normalise
from pipeline.settings import BUILD_DIR, SCRATCH, Platform, Settings, parse_platform
from pipeline.source import SourceTree, is_build_input
from pipeline.stages import WORKDIR, vet_and_test
from pipeline.variants import VARIANTS, Built, Image, Target

NO_LOADER = "no supported api for loading image"
T = TypeVar("T")
UPLOAD_TRIES = 3  # a file saved while the source is uploaded: read the tree again, twice
PUBLISH_TIMEOUT = 300.0  # seconds: a push to a registry that never answers ends, and says so


@dataclass
class Clock:
    """Wall time of each awaited step, in order."""

    steps: list[Step] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append(Step(name, time.perf_counter() - start))


async def _sync_all(containers: Sequence[dagger.Container]) -> None:
    """Evaluate the containers concurrently (the engine schedules the work)."""
    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(container.sync)


def _check_platforms(image: Image, info: ImageInfo, platforms: Sequence[str]) -> None:
    """A base image without a requested platform silently yields another one: refuse that."""
    found = {m.platform for m in info.manifests}
    missing = [p for p in platforms if p not in found]
    if len(image.containers) == len(platforms) and missing:
        raise PipelineError(
            f"{image.ref}: no {', '.join(missing)} image came out (got {', '.join(sorted(found))});"
            " the base image probably lacks that platform: use a multi-platform base or scratch"
        )


async def _export(
    image: Image,
    destination: Path | None,
    scratch: Path,
    platforms: Sequence[str],
    session: Session,
    epoch: int | None,
) -> tuple[ImageInfo, Path]:
    """Export the image as an OCI tarball, made reproducible when an epoch is given, and read
    it back. It lands at `destination` (atomically) or, without one, in `scratch`."""
    first, *rest = image.containers
    target = destination or scratch / f"{image.ref.replace(':', '-')}.tar"
    with atomic_path(target) as tmp:
        if epoch is None:
            await first.export(str(tmp), platform_variants=rest)
        else:
            raw = scratch / "engine-export.tar"
            # normalise compresses every layer itself: the engine need not, nor we undo it.
            await first.export(
                str(raw),
                platform_variants=rest,
                forced_compression=dagger.ImageLayerCompression.Uncompressed,
            )
            await anyio.to_thread.run_sync(
                functools.partial(
                    normalise, raw, tmp, epoch=epoch, ref_name=image.ref, memo=session.canonical
                )
            )
            raw.unlink()
        try:
            info = await anyio.to_thread.run_sync(read_image, tmp, session.layers)
        except OCIError as err:
            raise PipelineError(f"the exported image is unreadable: {err}") from err
        _check_platforms(image, info, platforms)
    return info, target


async def _pin_bases(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Resolve the go and runtime images to digests (Container.image_ref, read right after
    from_), hold them to the lock file, and return settings that build from the digests."""
    lock = pins.read_lock(settings.lock)
    pinned: dict[str, str] = {}
    for requested in dict.fromkeys((settings.go_image, settings.runtime_image)):
        if requested == SCRATCH:
            continue
        resolved = await dag.container().from_(requested).image_ref()
        pinned[requested] = pins.check(requested, resolved, lock, settings.lock)
    runtime = pinned.get(settings.runtime_image, settings.runtime_image)
    return replace(settings, go_image=pinned[settings.go_image], runtime_image=runtime), pinned


def _sbom(buildinfo: str, settings: Settings, info: ImageInfo, original: Settings) -> bytes:
    """The SPDX SBOM of a reproducible image, from its binary's build info."""
    assert settings.provenance is not None
    subject = sbom.Subject(
        name=original.tag,
        digest=info.digest,
        base=None if settings.scratch else settings.runtime_image,
        epoch=settings.provenance.epoch,
    )
    return sbom.build_sbom(sbom.parse_buildinfo(buildinfo), subject)


async def _publish_sbom(document: bytes | None, settings: Settings, info: ImageInfo) -> str | None:
    """The SBOM as a referrer of the published image; its fallback tag."""
    if document is None or settings.publish is None or settings.provenance is None:
        return None
    from pipeline import registry  # oras and requests: only a push needs them

    login = registry.Login.of(settings)
    subject = {"mediaType": info.media_type, "digest": info.digest, "size": info.size}
    push = functools.partial(
        registry.push_sbom,
        document,
        settings.publish,
        login,
        subject=subject,
        media_type=sbom.MEDIA_TYPE,
        created=settings.provenance.created,
    )
    result: str = await anyio.to_thread.run_sync(push, abandon_on_cancel=True)
    return result


async def _load(image: Image, index: int, tarball: Path | None, scratch: Path) -> str:
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


async def _publish(image: Image, settings: Settings, tarball: Path, info: ImageInfo) -> str:
    """Push the image: the reproducible tarball through oras (digest kept), or, for naive,
    what the engine builds (Container.publish)."""
    ref = settings.publish
    assert ref is not None
    if settings.provenance is not None:
        from pipeline import registry  # oras and requests: only a push needs them

        login = registry.Login.of(settings)
        push = functools.partial(
            registry.push_image, tarball, ref, login, ref_name=image.ref, digest=info.digest
        )
        return await anyio.to_thread.run_sync(push, abandon_on_cancel=True)
    first, *rest = image.containers
    if settings.registry_username and settings.registry_password:
        secret = dag.set_secret("pipeline-registry-password", settings.registry_password.value)
        first = first.with_registry_auth(ref.registry, settings.registry_username, secret)
    return await first.publish(ref.text, platform_variants=rest)


def _image_report(role: str, image: Image, info: ImageInfo, output: str | None) -> ImageReport:
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


@dataclass
class Session:
    """What the variants built in one Dagger session share."""

    native: Platform
    scratch: Path
    bases: dict[str, ImageInfo] = field(default_factory=dict)
    layers: dict[str, Layer] = field(default_factory=dict)  # each layer read once
    canonical: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # recompressed once
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    started: float = 0.0  # the engine's clock when the session opened, once `clock` is set
    clock: anyio.Event = field(default_factory=anyio.Event)


async def _engine_clock(settings: Settings, session: Session) -> None:
    """Read the engine's wall clock as the session opens, in a container no cache can answer
    (the host's clock may differ, e.g. when the engine runs in a VM). It runs beside the
    first build."""
    stamp = (
        dag.container()
        .from_(settings.go_image)
        .with_env_variable("PIPELINE_SESSION", uuid.uuid4().hex)  # never cached
        .with_exec(["date", "+%s.%N"])
    )
    session.started = float((await stamp.stdout()).strip())
    session.clock.set()


async def _after_build(built: Built, session: Session) -> tuple[str, str]:
    """One exec right after the build, cached exactly when the build is: its stamp, older
    than the session if it came from the cache, says "cold" (`go build` ran in this session)
    or "warm"; it also prints the binary's build info (`go version -m -json`), what the SBOM
    is made from. It runs beside the export."""
    script = 'date +%s.%N && exec go version -m -json "$1"'
    printed = await built.build_stage.with_exec(
        ["sh", "-c", script, "sh", built.binary_path]
    ).stdout()
    stamp, _, buildinfo = printed.partition("\n")
    await session.clock.wait()
    return ("warm" if float(stamp) < session.started else "cold"), buildinfo


async def _base_info(image: Image, session: Session) -> ImageInfo | None:
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


async def _build_variant(
    settings: Settings, tree: SourceTree, session: Session, *, dissect_images: bool
) -> RunReport:
    """Build one variant and export, load, publish and run it as the settings say."""
    clock = Clock()
    scratch = Path(tempfile.mkdtemp(prefix=f"{settings.variant}-", dir=session.scratch))
    native = session.native
    platforms = settings.platforms or (native,)
    original = settings
    settings, pinned = await _pin_bases(settings)

    async def build(current: Settings) -> Built:
        built = await VARIANTS[settings.variant](Target(current, tree, platforms, native, scratch))
        await _sync_all([c for i in (built.image, *built.extras) for c in i.containers])
        return built

    with clock.step("build"):
        built = await _uploading(build, settings)

    runnable = platforms.index(native) if native in platforms else None
    notes: list[str] = []
    if runnable is None and (settings.load or settings.run):
        skipped = " and ".join(
            w for w, on in (("--load", settings.load), ("--run", settings.run)) if on
        )
        notes.append(f"{skipped} skipped: no {native} image (the engine's own) among --platform")
    facts: list[tuple[str, str]] = []

    async def learn() -> None:
        facts.append(await _after_build(built, session))

    reports: list[ImageReport] = []
    infos: list[tuple[ImageInfo, Path]] = []
    async with anyio.create_task_group() as group:
        # What the export does not wait for: the cache state and the SBOM's build info.
        group.start_soon(learn)
        for role, image in (("image", built.image), *(("builder", e) for e in built.extras)):
            destination = settings.output if role == "image" else settings.builder_output
            # The variant's own image is made reproducible; the builder pattern's build image,
            # like the naive one, is what it is.
            epoch = settings.provenance.epoch if settings.provenance and role == "image" else None
            with clock.step("export" if role == "image" else f"export {role}"):
                info, tarball = await _export(
                    image, destination, scratch, [str(p) for p in platforms], session, epoch
                )
            infos.append((info, tarball))
            report = _image_report(role, image, info, str(destination) if destination else None)
            if dissect_images:
                base = await _base_info(image, session)
                report = replace(
                    report,
                    anatomy=dissect(
                        info.manifests[runnable or 0],
                        base.manifests[0] if base else None,
                        f"{WORKDIR}/{settings.name}",
                    ),
                )
            if settings.load and runnable is not None:
                with clock.step("load" if role == "image" else f"load {role}"):
                    index = runnable if len(image.containers) > 1 else 0
                    loaded = await _load(image, index, tarball, scratch)
                report = replace(report, loaded=loaded)
            reports.append(report)

    info, tarball = infos[0]
    (cache, buildinfo), document = facts[0], None
    if settings.provenance is not None and (
        settings.output is not None or settings.publish is not None  # somewhere to put it
    ):
        with clock.step("sbom"):
            document = _sbom(buildinfo, settings, info, original)
    if document is not None and settings.output is not None:
        sbom_path = settings.output.with_name(settings.output.name + ".spdx.json")
        write_bytes(sbom_path, document)
        reports[0] = replace(reports[0], sbom=str(sbom_path))

    if settings.publish is not None:
        with clock.step("publish"):
            try:
                with anyio.fail_after(PUBLISH_TIMEOUT):
                    published = await _publish(built.image, settings, tarball, info)
                    referrer = await _publish_sbom(document, settings, info)
            except TimeoutError:
                raise RegistryError(
                    f"registry {settings.publish.registry} did not finish the push within "
                    f"{PUBLISH_TIMEOUT:.0f}s: is it up, is the address right?"
                ) from None
        reports[0] = replace(reports[0], published=published, sbom_tag=referrer)
    if settings.lock is not None:
        pins.write_lock(settings.lock, pinned)

    printed = None
    if settings.run and runnable is not None:
        with clock.step("run"):
            printed = (
                await built.image.containers[runnable].with_exec([], use_entrypoint=True).stdout()
            )

    return RunReport(
        variant=str(settings.variant),
        go_image=original.go_image,
        runtime_image=original.runtime_image,
        bases=pinned,
        platforms=tuple(str(p) for p in platforms),
        images=tuple(reports),
        printed=printed,
        steps=tuple(clock.steps),
        cache=cache,
        notes=tuple(notes),
    )


async def _vet_and_test(settings: Settings, tree: SourceTree) -> Step:
    async def test(current: Settings) -> None:
        await vet_and_test(current, tree).sync()

    clock = Clock()
    with clock.step("test"):
        await _uploading(test, settings)
    return clock.steps[0]


_CHANGED_IN_UPLOAD = re.compile(r'conflict at "([^"]+)": mod time changed')


def _first(err: BaseException) -> BaseException:
    """The first failure inside task groups (anyio raises them as exception groups)."""
    while isinstance(err, BaseExceptionGroup):
        err = err.exceptions[0]
    return err


def _changed_in_upload(err: BaseException) -> str | None:
    """The file the engine saw change while it was uploading the source, if that failed."""
    err = _first(err)
    found = _CHANGED_IN_UPLOAD.search(str(err)) if isinstance(err, dagger.QueryError) else None
    return found.group(1) if found else None


async def _uploading(attempt: Callable[[Settings], Awaitable[T]], settings: Settings) -> T:
    """Run `attempt(settings)`, which uploads the source; if a file changed while it was being
    uploaded (an editor saving, a generator writing), run it again with settings that read the
    tree from the host anew, up to UPLOAD_TRIES times in all."""
    for tried in range(1, UPLOAD_TRIES + 1):
        try:
            return await attempt(settings if tried == 1 else replace(settings, reload_source=True))
        except (dagger.QueryError, ExceptionGroup) as err:
            if tried == UPLOAD_TRIES or _changed_in_upload(err) is None:
                raise
    raise AssertionError("unreachable: the last try returns or raises")


_RESOLVING = re.compile(r'failed to resolve (?:source metadata for |image )"([^"]+)"')
_DIALING = re.compile(r"dial tcp ([\w.\-\[\]:]+?):\s")


def _query_failed(err: dagger.QueryError, settings: Settings) -> PipelineError:
    """One line for an engine error that is not a failed command: what, and what to do."""
    message = str(err)
    first = message.splitlines()[0] if message else type(err).__name__
    image = _RESOLVING.search(message)
    dialed = _DIALING.search(message)
    registry = (
        dialed.group(1)
        if dialed
        else (settings.publish.registry if settings.publish else "the registry")
    )
    changed = _CHANGED_IN_UPLOAD.search(message)
    if changed:
        return PipelineError(
            f"{changed.group(1)} kept changing while the source was uploaded ({UPLOAD_TRIES} "
            "tries): run again once the tree is still"
        )
    if "no space left on device" in message:
        return OutputError(f"no space left on the device of the output: {first}")
    if "401 Unauthorized" in message or "unauthorized" in message.lower():
        name = settings.publish.registry if settings.publish and not image else registry
        return RegistryError(
            f"authentication failed for {name}: check --registry-username and "
            "PIPELINE_REGISTRY_PASSWORD"
        )
    reason = unreachable_reason(message)
    if reason:
        return RegistryError(
            f"registry {registry} unreachable ({reason}): is it up, is the address right?"
        )
    if image and "not found" in message:
        return RegistryError(
            f"image {image.group(1)} not found: check its name and tag, and that its registry "
            "has it"
        )
    return PipelineError(first)


def _scratch_dir() -> Path:
    """A private directory under build/ for files the run removes again."""
    try:
        BUILD_DIR.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".pipeline-", dir=BUILD_DIR)).resolve()
    except OSError as err:
        raise OutputError(
            f"cannot make a work directory in {BUILD_DIR.resolve()}: {err.strerror}"
        ) from None


def _translate(err: BaseException, settings: Settings) -> BaseException:
    """Our error for an engine error; the first failure of a task group; others unchanged."""
    err = _first(err)
    if isinstance(err, dagger.ExecError):
        command = " ".join(err.command)
        # go test reports failures on stdout, the compiler on stderr: show both.
        return BuildFailed(
            f"`{command}` failed with exit code {err.exit_code}",
            detail="\n".join(part.strip() for part in (err.stdout, err.stderr) if part.strip()),
        )
    if isinstance(err, dagger.QueryError):
        return _query_failed(err, settings)
    if isinstance(err, dagger.DaggerError):
        return PipelineError(f"the Dagger engine failed: {str(err).splitlines()[0]}")
    return err


async def _in_session(body: Callable[[Session], Awaitable[T]], settings: Settings) -> T:
    """Open the Dagger session, run `body`, and turn engine errors into ours."""
    scratch = _scratch_dir()
    own: BaseException | None = None
    connected = False
    try:
        async with dagger.connection(dagger.Config(log_output=None)):
            connected = True
            try:
                native = parse_platform(str(await dag.default_platform()))
                session = Session(native, scratch)
                async with anyio.create_task_group() as group:
                    group.start_soon(_engine_clock, settings, session)
                    return await body(session)
            except (PipelineError, UsageError, dagger.DaggerError, ExceptionGroup) as err:
                # Leave the session first: the SDK's teardown would wrap it in a SessionError.
                own = _translate(err, settings)
        assert own is not None
        raise own
    except (dagger.ClientConnectionError, dagger.ProvisionError) as err:
        if connected:  # the session broke (or its CLI failed) after it had started
            raise PipelineError(f"the Dagger session failed: {err}") from None
        raise EngineUnavailable(
            "no Dagger engine reachable: run inside `dagger run` with Docker running, "
            f"or start the test bed (sudo tests/testbed/up; . tests/testbed/env) [{err}]"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def run(settings: Settings, tree: SourceTree) -> RunReport:
    """Build one variant in one Dagger session and return what it made."""

    async def body(session: Session) -> RunReport:
        tested = (await _vet_and_test(settings, tree),) if settings.test else ()
        report = await _build_variant(settings, tree, session, dissect_images=False)
        return replace(report, steps=(*tested, *report.steps))

    return await _in_session(body, settings)


async def compare(jobs: Sequence[Settings], tree: SourceTree) -> tuple[RunReport, ...]:
    """Build every job in one session, concurrently, each image taken apart."""

    async def body(session: Session) -> tuple[RunReport, ...]:
        tested = (await _vet_and_test(jobs[0], tree),) if jobs[0].test else ()
        results: dict[int, RunReport] = {}

        async def one(index: int, settings: Settings) -> None:
            results[index] = await _build_variant(settings, tree, session, dissect_images=True)

        async with anyio.create_task_group() as group:
            for index, settings in enumerate(jobs):
                group.start_soon(one, index, settings)
        return tuple(
            replace(results[i], steps=(*tested, *results[i].steps)) for i in range(len(jobs))
        )

    return await _in_session(body, jobs[0])


@dataclass(frozen=True)
class Verdict:
    """Two builds of the same inputs, the second with every step run again."""

    first: RunReport
    second: RunReport
    differences: tuple[str, ...]

    @property
    def reproducible(self) -> bool:
        return not self.differences


async def verify(settings: Settings, tree: SourceTree) -> Verdict:
    """Build twice in one session, the second time forcing every build step to run again
    (new source upload, cache-busted toolchain), and compare the two images."""

    async def body(session: Session) -> Verdict:
        once = replace(
            settings, output=session.scratch / "first.tar", load=False, publish=None, run=False
        )
        first = await _build_variant(once, tree, session, dissect_images=False)
        again = replace(once, output=session.scratch / "second.tar", cache_bust=uuid.uuid4().hex)
        second = await _build_variant(again, tree, session, dissect_images=False)
        found = await anyio.to_thread.run_sync(
            differences, session.scratch / "first.tar", session.scratch / "second.tar"
        )
        return Verdict(first, second, tuple(found))

    return await _in_session(body, settings)


async def watch(
    settings: Settings, tree: SourceTree, show: Callable[[RunReport | PipelineError], None]
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
        changes = watchfiles.awatch(
            tree.root.resolve(),
            watch_filter=relevant,
            step=20,
            debounce=400,
            rust_timeout=500,
            yield_on_timeout=True,
        )
        async for batch in changes:
            armed.set()
            if batch:
                changed.set()

    async def body(session: Session) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(watcher)
            await armed.wait()
            await builds(session)

    async def builds(session: Session) -> None:
        nonlocal changed
        current = settings
        while True:
            try:
                tested = (await _vet_and_test(current, tree),) if current.test else ()
                report = await _build_variant(current, tree, session, dissect_images=False)
                show(replace(report, steps=(*tested, *report.steps)))
            except (PipelineError, dagger.DaggerError, ExceptionGroup) as err:
                failure = _translate(err, settings)
                if not isinstance(failure, PipelineError):
                    raise failure from None
                show(failure)
            # Wait for the next change; from now on the source is read from the host anew.
            await changed.wait()
            changed = anyio.Event()
            current = replace(settings, reload_source=True)

    await _in_session(body, settings)
