"""The flows: one build (`run`), every variant side by side (`compare`), the same build twice
(`verify`) and a build on every change (`watch`). Each opens one session
(pipeline.engine.session), brackets its builds with the Go caches (pipeline.flows.gocache),
builds each variant's recipe (pipeline.flows.build) and delivers what it described
(pipeline.flows.deliver), timing each step."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import dagger
import watchfiles

from pipeline.clock import StepHook
from pipeline.engine.session import Session, in_session, translate
from pipeline.errors import BuildFailed, EngineUnavailable, PipelineError
from pipeline.flows import build, gocache
from pipeline.flows.reuse import Kept
from pipeline.image.diff import base_mismatches, differences
from pipeline.recipe.source import SourceTree, is_build_input
from pipeline.recipe.stages import binary_name
from pipeline.recipe.variants import VARIANTS
from pipeline.results import RunReport, Step
from pipeline.settings import Settings, Variant


async def run(settings: Settings, tree: SourceTree, hook: StepHook | None = None) -> RunReport:
    """Build one variant in one Dagger session and return what it made."""

    async def body(session: Session) -> RunReport:
        async with gocache.bracket(settings, tree, session) as cache:
            tested = (await build.tests(settings, tree, session),) if settings.test else ()
            report = await build.variant(
                settings, tree, session, dissect_images=False, beside=cache.save
            )
        report = cache.around(report, tested)
        if cache.started is not None and not VARIANTS[settings.variant].compiles_with_go_caches:
            note = (
                f"{settings.variant} compiles without cache volumes, as the write-up's "
                "Dockerfile does: the Go cache serves go vet and go test only"
            )
            report = replace(report, notes=(*report.notes, note))
        return report

    return await in_session(body, settings, hook)


async def images(
    jobs: Sequence[Settings], trees: Sequence[SourceTree], hook: StepHook | None = None
) -> tuple[RunReport | PipelineError, ...]:
    """Build several images (a config file's [images.NAME]) in one session, at once, on the
    same Go caches: each image's report, or why it failed. The tests run once for each set of
    build tags and environment; the Go caches are saved (--cache-to) if every image built."""

    async def body(session: Session) -> tuple[RunReport | PipelineError, ...]:
        first = jobs[0]
        async with gocache.bracket(first, trees[0], session) as cache:
            tested: list[Step] = []
            kinds = {
                (j.go_build.tags, j.go_build.env): (j, t) for j, t in zip(jobs, trees, strict=True)
            }
            for job, tree in kinds.values() if first.test else ():
                tested.append(await build.tests(job, tree, session))
            outcomes: dict[int, RunReport | PipelineError] = {}

            groups = built_together(jobs, trees)

            async def one(index: int) -> None:
                settings, tree = jobs[index], trees[index]
                try:
                    outcomes[index] = await _image(settings, tree, session, groups[index])
                except (PipelineError, dagger.DaggerError, ExceptionGroup) as err:
                    failure = translate(err, settings)
                    if not isinstance(failure, PipelineError) or isinstance(
                        failure, EngineUnavailable
                    ):
                        raise failure from None  # the run's failure, not the image's
                    outcomes[index] = failure

            async with anyio.create_task_group() as group:
                for index in range(len(jobs)):
                    group.start_soon(one, index)
            reports = [o for o in outcomes.values() if isinstance(o, RunReport)]
            if len(reports) == len(outcomes) and cache.save is not None:
                # Warm only if every image's build came from the engine's cache.
                warm = all(r.cache == "warm" for r in reports)
                await cache.save("warm" if warm else "cold")
        found = [outcomes[i] for i in range(len(jobs))]
        if isinstance(found[0], RunReport):  # the run's own steps, once
            found[0] = cache.around(found[0], tested)
        return tuple(found)

    return await in_session(body, jobs[0], hook)


async def _image(
    settings: Settings, tree: SourceTree, session: Session, together: tuple[str, ...]
) -> RunReport:
    """One image of several, built with the packages `together` with it; if that shared
    `go build` fails, built alone: another package may be the one that fails, and this
    image's outcome is its own build's."""
    try:
        return await build.variant(settings, tree, session, dissect_images=False, together=together)
    except (PipelineError, dagger.DaggerError, ExceptionGroup) as err:
        if not together or not isinstance(translate(err, settings), BuildFailed):
            raise
    return await build.variant(settings, tree, session, dissect_images=False)


def built_together(jobs: Sequence[Settings], trees: Sequence[SourceTree]) -> list[tuple[str, ...]]:
    """For each image, the main packages one `go build` makes with its own (() for none):
    multistage images of one source with the same Go image, platforms, build settings,
    modules and caches, whose binaries' names differ."""
    groups: dict[object, list[int]] = {}
    for index, (job, tree) in enumerate(zip(jobs, trees, strict=True)):
        if job.variant is Variant.MULTISTAGE and tree.package != ".":
            key = (tree.root, job.go_image, job.platforms, job.go_build, job.modules,
                   job.cache_from, job.cache_to, job.cache_bust)  # fmt: skip
            groups.setdefault(key, []).append(index)
    together: list[tuple[str, ...]] = [()] * len(jobs)
    for members in groups.values():
        packages = tuple(trees[i].package for i in members)
        names = [binary_name(p) for p in packages]
        if len(members) > 1 and len(set(names)) == len(names):
            for index in members:
                together[index] = packages
    return together


async def compare(
    jobs: Sequence[Settings], tree: SourceTree, hook: StepHook | None = None
) -> tuple[RunReport, ...]:
    """Build every job in one session, concurrently, each image taken apart."""

    async def body(session: Session) -> tuple[RunReport, ...]:
        tested = (await build.tests(jobs[0], tree, session),) if jobs[0].test else ()
        results: dict[int, RunReport] = {}

        async def one(index: int, settings: Settings) -> None:
            results[index] = await build.variant(settings, tree, session, dissect_images=True)

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
            output=session.temp / "first.tar",
            load=False,
            publish=None,
            run=False,
            cache_to=None,
        )
        async with gocache.bracket(once, tree, session) as cache:
            first = await build.variant(once, tree, session, dissect_images=False)
        first = replace(first, go_cache=cache.started)
        # Fresh Go caches, no --cache-from: a poisoned cache shows up as a difference.
        again = replace(
            once,
            output=session.temp / "second.tar",
            cache_bust=uuid.uuid4().hex,
            cache_from=None,
        )
        second = await build.variant(again, tree, session, dissect_images=False)
        found = await anyio.to_thread.run_sync(
            differences, session.temp / "first.tar", session.temp / "second.tar"
        )
        # Each build holds its base as the base's registry serves it, layer for layer.
        pinned = first.bases.get(settings.runtime_image)
        bases = {p: session.bases[pinned, p] for p in first.platforms} if pinned else {}
        for which, tarball in (("first", "first.tar"), ("second", "second.tar")):
            wrong = await anyio.to_thread.run_sync(base_mismatches, session.temp / tarball, bases)
            found.extend(f"{which} build: {line}" for line in wrong)
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
        async with anyio.create_task_group() as group:
            group.start_soon(watcher)
            await armed.wait()
            # --cache-to is for one-shot builds; what the first build started from is shown.
            async with gocache.bracket(settings, tree, session) as cache:
                await builds(session, cache)

    async def builds(session: Session, cache: gocache.Bracket) -> None:
        nonlocal changed
        current = settings
        kept = Kept(session.temp)  # each image, for the next build to start from
        restored, started = cache.restored, cache.started
        while True:
            try:
                tested = (await build.tests(current, tree, session),) if current.test else ()
                report = await build.variant(
                    current, tree, session, dissect_images=False, kept=kept
                )
                steps = (*restored, *tested, *report.steps)
                show(replace(report, steps=steps, go_cache=started))
                restored, started = (), None
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
