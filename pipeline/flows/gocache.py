"""The Go caches through a registry: --cache-from restores the Go build cache (and, for sources
that are not vendored, the module download cache) into the build's cache volumes before the
build; --cache-to saves what the build used after it succeeds. A cache is an optimisation,
never a dependency: every failure here is a warning, and the build goes on without it.

What travels is an OCI artifact (pipeline.flows.cache_artifact), one gzipped tar per cache,
tagged under the REF per platform set and Go image, so that they do not evict each other's
caches. The steps in containers are pipeline.recipe.cache_steps'; `bracket` puts them around
a flow's builds.

"What the build used": Go touches a build cache entry's mtime when it uses it and the mtime is
more than an hour old. Restored entries are given mtimes two hours in the past, so after the
build an entry newer than an hour before the session began was used (or made) by it; the
save takes those and nothing else, and the artifact does not grow with every commit."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import shlex
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import dagger
from dagger import dag

from pipeline.clock import Clock
from pipeline.engine.session import Session, exec_step
from pipeline.errors import PipelineError
from pipeline.flows import cache_artifact
from pipeline.recipe import cache_steps, pins
from pipeline.recipe.source import SourceTree
from pipeline.refs import ImageRef, Platform
from pipeline.results import GoCache, RunReport, Step
from pipeline.settings import Settings

WINDOW = 3660  # seconds before the session's start: what Go's touch leaves (an hour) + slack
_TAG_UNSAFE = re.compile(r"[^\w.-]")


def wanted(settings: Settings) -> bool:
    """Whether the run uses a registry cache at all."""
    return settings.cache_from is not None or settings.cache_to is not None


def cache_tag(ref: ImageRef, settings: Settings, platforms: Sequence[Platform]) -> str:
    """The tag of the cache for these platforms and this Go image, under `ref`'s tag:
    main → main-linux-amd64-go-3f2a9c1d0e4b (the Go image as the user named it, hashed)."""
    targets = "_".join(_TAG_UNSAFE.sub("-", str(p).replace("/", "-")) for p in platforms)
    if len(targets) > 40:
        targets = hashlib.sha256(targets.encode()).hexdigest()[:12]
    go = hashlib.sha256(settings.go_image.encode()).hexdigest()[:12]
    return f"{ref.push_tag}-{targets}-go-{go}"


async def _helper(settings: Settings, session: Session) -> str:
    """The helper image, pinned by digest and held to the lock file as the bases are (once
    per session: the lock file records it with them)."""
    requested = settings.helper_image
    if requested not in session.pins:
        resolved = await dag.container().from_(requested).image_ref()
        lock = pins.read_lock(settings.lock)
        session.pins[requested] = pins.check(requested, resolved, lock, settings.lock)
    return session.pins[requested]


def _without(option: str, ref: ImageRef, cause: str) -> str:
    """The warning of a cache that could not be used."""
    then = "building without it" if option == "--cache-from" else "the build stands, uncached"
    return f"{option} {ref}: {cause}; {then}"


async def restore(settings: Settings, session: Session, platforms: Sequence[Platform]) -> GoCache:
    """Fill the build's empty cache volumes from --cache-from; say what the build starts from:
    "none" (empty volumes), "engine" (volumes this engine filled) or "registry".

    On a new runner the engine's pull of the Go image is most of the wait, and nothing here
    needs that image: the artifact is downloaded, inflated and sent to the engine, and
    unpacked (after a look at the volumes) in the small helper image, while the Go image is
    pulled (bracket). Beside the download a probe looks at the volumes: if they are warm, the
    download and the unpack are dropped; the unpack waits for its answer (run at once, a
    quick unpack could fill the volumes before the probe looked, which then took our own
    restore for the engine's)."""
    ref = settings.cache_from
    option, warned = ("--cache-from", ref) if ref is not None else ("--cache-to", settings.cache_to)
    assert warned is not None
    restored: list[GoCache] = []
    probed = anyio.Event()  # the volumes found empty: the unpack may fill them
    helper: list[str] = []

    async def pull_and_unpack(ref: ImageRef) -> None:
        tag = cache_tag(ref, settings, platforms)
        source = f"{ref.qualified}:{tag}"
        directory = Path(tempfile.mkdtemp(prefix="cache-from-", dir=session.temp))
        try:
            files = await cache_artifact.pull(settings, ref, tag, directory)
        except PipelineError as err:
            restored.append(_not_restored(ref, str(err)))
            return
        size = sum(path.stat().st_size for path in files)
        try:
            tars = [await anyio.to_thread.run_sync(cache_artifact.inflate, path) for path in files]
        except (gzip.BadGzipFile, EOFError, zlib.error):
            restored.append(_not_restored(ref, f"{source} does not unpack (a corrupt cache)"))
            return
        except OSError as err:  # the host's disk
            restored.append(_not_restored(ref, f"could not inflate it ({err})"))
            return
        restored.append(await _unpack(settings, helper, probed, ref, source, tars, size))

    async with anyio.create_task_group() as group:
        if ref is not None:
            group.start_soon(pull_and_unpack, ref)
        try:
            helper.append(await _helper(settings, session))
            probe = cache_steps.probe(helper[0], settings)
            found = (await exec_step(probe.stdout(), helper[0], "sh -c <probe>")).strip()
        except (PipelineError, dagger.QueryError) as err:
            group.cancel_scope.cancel()
            cause = _first_line(err)  # the probe's failure names its image; a pull's, not
            if not isinstance(err, PipelineError):
                cause = f"the helper image {settings.helper_image}: {cause}"
            return GoCache(started_from="none", warnings=(_without(option, warned, cause),))
        if ref is None or found == "engine":
            group.cancel_scope.cancel()
            return GoCache(started_from=found)
        probed.set()
    return restored[0]


def _not_restored(ref: ImageRef, cause: str) -> GoCache:
    return GoCache(started_from="none", warnings=(_without("--cache-from", ref, cause),))


async def _unpack(
    settings: Settings,
    helper: list[str],
    probed: anyio.Event,
    ref: ImageRef,
    source: str,
    files: list[Path],
    size: int,
) -> GoCache:
    """The downloaded tarballs (inflated) unpacked into the build's volumes, in the helper
    image (helper[0], there once `probed` is set), once the probe found them empty. They are
    sent to the engine first, while it may still be pulling the images."""
    try:
        uploaded = {
            path.name: await dag.host().file(str(path), no_cache=True).sync() for path in files
        }
        await probed.wait()
        done = cache_steps.unpack(helper[0], settings, uploaded)
        outcome = (await exec_step(done.stdout(), helper[0], "sh -c <restore script>")).strip()
    except PipelineError as err:
        return _not_restored(ref, str(err))
    except dagger.QueryError as err:
        return _not_restored(ref, f"the restore failed ({_first_line(err)})")
    if outcome == "corrupt":
        return _not_restored(ref, f"{source} does not unpack (a corrupt cache)")
    if outcome == "engine":  # another build on this engine filled the volumes meanwhile
        return GoCache(started_from="engine")
    return GoCache(started_from="registry", restored_from=source, restored_size=size)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


async def save(
    settings: Settings,
    tree: SourceTree,
    session: Session,
    platforms: Sequence[Platform],
    started: GoCache,
    built: str,
) -> GoCache:
    """After a successful build: push the cache entries it used to --cache-to. `started` (what
    restore said) comes back with what was saved, or with one more warning. A `built` "warm"
    came from the engine's cache: no entry was used, so the cache at the tag stands (`kept`),
    not replaced by an almost empty one."""
    ref = settings.cache_to
    assert ref is not None
    await session.clock.wait()
    modules = tree.module and not tree.vendored
    tag = cache_tag(ref, settings, platforms)
    try:
        if built == "warm" and (there := await cache_artifact.standing(settings, ref, tag)):
            at = f"{ref.qualified}:{tag}@{there[0]}"
            return replace(started, saved_to=at, saved_size=there[1], kept=True)
        directory = Path(tempfile.mkdtemp(prefix="cache-to-", dir=session.temp))
        helper = await _helper(settings, session)
        listed = await _used_modules(settings, tree) if modules else None
        since = int(session.started) - WINDOW
        packing = cache_steps.pack(helper, settings, since, listed).export(str(directory))
        await exec_step(packing, helper, "sh -c <save script>")
        for name in (
            (cache_steps.BUILD_TAR, cache_steps.MOD_TAR) if modules else (cache_steps.BUILD_TAR,)
        ):
            await anyio.to_thread.run_sync(cache_artifact.merge, directory, name)
        pushed, size = await cache_artifact.push(
            settings, ref, tag, directory, modules=bool(modules)
        )
    except (PipelineError, dagger.QueryError, OSError, tarfile.TarError) as err:
        warning = _without("--cache-to", ref, _first_line(err))
        return replace(started, warnings=(*started.warnings, warning))
    return replace(started, saved_to=f"{ref.qualified}:{tag}@{pushed}", saved_size=size)


async def _used_modules(settings: Settings, tree: SourceTree) -> list[str]:
    """The module cache files of the modules the build's packages come from: `go list`, the
    one step here that needs the Go image, asks nothing of it but `go`."""
    listing, command = cache_steps.module_list(settings, tree)
    listed = await exec_step(listing.stdout(), settings.go_image, shlex.join(command))
    return cache_steps.module_files(listed)


async def _pull_image(image: str) -> None:
    """Have the engine pull and unpack `image` (no exec: its root directory listed), so that
    on a new runner the Go image comes in while the caches are restored; a failure is the
    build's to report."""
    with contextlib.suppress(dagger.QueryError):
        await dag.container().from_(image).rootfs().entries()


@dataclass
class Bracket:
    """The Go caches around a flow's builds: what the builds started from (`started`: None
    without --cache-from/--cache-to) and the restore's step; `save`, to run beside the
    delivery once the build succeeded (None where nothing is saved), and its step."""

    settings: Settings
    tree: SourceTree
    session: Session
    started: GoCache | None = None
    restored: tuple[Step, ...] = ()
    saved_to: GoCache | None = None
    clock: Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Clock(self.session.hook, label=self.settings.tag)

    @property
    def saved(self) -> tuple[Step, ...]:  # the save's step, once it ran
        return tuple(self.clock.steps)

    def around(self, report: RunReport, tested: Sequence[Step]) -> RunReport:
        """The run's report with its own steps around the build's (the restore, the tests,
        then the build's, then the save) and what the Go caches did."""
        steps = (*self.restored, *tested, *report.steps, *self.saved)
        return replace(report, steps=steps, go_cache=self.go_cache)

    @property
    def go_cache(self) -> GoCache | None:
        """What the report says of the Go caches: what was saved, else what was restored."""
        return self.saved_to or self.started

    @property
    def save(self) -> Callable[[str], Coroutine[Any, Any, None]] | None:
        """The save to --cache-to, where the run saves: called with the build's "cold" or
        "warm" (save)."""
        if self.started is None or self.settings.cache_to is None:
            return None
        return self._save

    async def _save(self, built: str) -> None:  # beside the export and publish
        assert self.started is not None
        with self.clock.step("save cache") as running:
            platforms = self.settings.platforms or (self.session.native,)
            self.saved_to = await save(
                self.settings, self.tree, self.session, platforms, self.started, built
            )
            running.size = self.saved_to.saved_size


@contextlib.asynccontextmanager
async def bracket(settings: Settings, tree: SourceTree, session: Session) -> AsyncIterator[Bracket]:
    """With --cache-from/--cache-to: the build's Go caches restored from the registry into
    empty volumes, while the engine pulls the Go image (which goes on beside the builds in
    the block). The Bracket yielded carries what they started from and the save."""
    cache = Bracket(settings, tree, session)
    if not wanted(settings):
        yield cache
        return
    async with anyio.create_task_group() as group:  # the restore runs in the helper image
        group.start_soon(_pull_image, settings.go_image)
        clock = Clock(session.hook, label=settings.tag)
        with clock.step("restore cache") as running:
            platforms = settings.platforms or (session.native,)
            cache.started = await restore(settings, session, platforms)
            running.size = cache.started.restored_size
        cache.restored = tuple(clock.steps)
        yield cache
