"""From checked Settings to an exit code: the one way into the engine (in_engine), each
command's work (build, watch, compare, verify) and what it prints (the progress on stderr as
it works, pipeline.cli.progress; the summary on stdout), and the errors turned into one line. No
Typer here; Dagger and the flows are imported only once a build starts, so `--help` and bad
flags answer at once."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from rich.console import Console

from pipeline import results, stopping
from pipeline.cli import compare, progress, summary
from pipeline.dagger_run import leave_dagger_run
from pipeline.engine.sdk import sdk_checks_off, sdk_lean
from pipeline.errors import BuildFailed, EngineUnavailable, PipelineError, UsageError
from pipeline.outputs import check_destination, write_text
from pipeline.recipe.source import inspect_source
from pipeline.settings import Settings, Variant

T = TypeVar("T")


def in_engine(flow: Callable[[ModuleType], Awaitable[T]]) -> T:
    """The one way into the engine: start the session child, import the Dagger SDK (without
    its runtime checks, sdk_lean) and pipeline.flows.run while it connects, then run
    `flow(flows)` in an event loop, cancelled by a signal (pipeline.stopping), and return
    what it gives."""
    import anyio

    from pipeline.engine import provision

    provision.start_early()  # it connects while the SDK is imported
    try:
        with sdk_checks_off(), sdk_lean(os.environ):
            from pipeline.flows import run as flows

        return anyio.run(stopping.cancellable, lambda: flow(flows))
    finally:
        provision.discard_early()  # started, but the run ended before its session


def check_destinations(settings: Settings) -> None:
    """Fail before any build if a result file (tarball, builder image, JSON) cannot be written."""
    for path, option in ((settings.output, "--output"), (settings.json_path, "--json")):
        if path is not None:
            check_destination(path, option=option)
    build_tar = settings.builder_output
    if settings.variant is not Variant.BUILDER or settings.output is None or build_tar is None:
        return
    if build_tar.resolve() == settings.output.resolve():
        raise UsageError(
            f"--output {settings.output}: that is where the builder image goes; choose another name"
        )
    check_destination(build_tar, option="--output (the builder image)")


def warn(warnings: tuple[str, ...]) -> None:
    """What the run could do without (a cache), one line each on stderr."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)


def execute(settings: Settings, *, verbose: bool) -> int:
    """Run the build and print the summary; return the exit code."""

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        check_destinations(settings)
        with progress.display(quiet=settings.quiet, env=os.environ) as hook:
            result: results.RunReport = in_engine(lambda flows: flows.run(settings, tree, hook))
        warn(result.warnings)
        if settings.json_path is not None:
            summary.write_json(result, settings.json_path)
        summary.render(result, summary.stdout_console())
        return 0

    return guarded(work, verbose=verbose)


def execute_images(jobs: tuple[Settings, ...], *, verbose: bool) -> int:
    """Build several images in one session; a summary for each that built, one line for
    each that failed; 1 if any did."""

    def work() -> int:
        trees = [inspect_source(job.source, job.package) for job in jobs]
        for job in jobs:
            check_destinations(job)
        first = jobs[0]
        with progress.display(quiet=first.quiet, env=os.environ, labelled=True) as hook:
            found: tuple[results.RunReport | PipelineError, ...] = in_engine(
                lambda flows: flows.images(jobs, trees, hook)
            )
        made = [r for r in found if isinstance(r, results.RunReport)]
        failed = [(j, f) for j, f in zip(jobs, found, strict=True) if isinstance(f, PipelineError)]
        for report in made:
            warn(report.warnings)
        if first.json_path is not None:
            summary.write_images_json(made, [(j.tag, str(f)) for j, f in failed], first.json_path)
        out = summary.stdout_console()
        for report in made:
            summary.render(report, out)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for job, failure in failed:
            say_error(err, failure, f"{job.tag}: ")
        return 1 if failed else 0

    return guarded(work, verbose=verbose)


def execute_watch(settings: Settings, *, verbose: bool) -> int:
    """Build on every change until interrupted; each result as it comes."""

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        check_destinations(settings)
        out = summary.stdout_console()
        err = Console(stderr=True, highlight=False, soft_wrap=True)

        def show(result: results.RunReport | PipelineError) -> None:
            if hook is not None:
                hook.pause()  # the live display makes way for the result
            if isinstance(result, PipelineError):
                say_error(err, result)
            else:
                warn(result.warnings)
                if settings.json_path is not None:
                    summary.write_json(result, settings.json_path)
                summary.render(result, out)
            if not settings.quiet:
                err.print(f"watching {tree.root} for changes (Ctrl-C stops)", markup=False)

        with progress.display(quiet=settings.quiet, env=os.environ) as hook:
            in_engine(lambda flows: flows.watch(settings, tree, show, hook))
        return 0

    return guarded(work, verbose=verbose)


@dataclass(frozen=True)
class CompareOutputs:
    """Where compare writes its results, and the command line the Markdown quotes."""

    json: Path | None
    markdown: Path | None
    chart: Path | None
    command: str

    def paths(self) -> list[tuple[Path, str]]:
        pairs = ((self.json, "--json"), (self.markdown, "--markdown"), (self.chart, "--chart"))
        return [(path, option) for path, option in pairs if path is not None]


def execute_compare(
    jobs: tuple[Settings, ...],
    outputs: CompareOutputs,
    budgets: dict[str, int],
    *,
    verbose: bool,
) -> int:
    """Build every image in one session, print the table, write the outputs, check budgets."""

    def work() -> int:
        tree = inspect_source(jobs[0].source, jobs[0].package)
        for path, option in outputs.paths():
            check_destination(path, option=option)
        # The builds run at once: each step says which image it is for.
        with progress.display(quiet=jobs[0].quiet, env=os.environ, labelled=True) as hook:
            reports: tuple[results.RunReport, ...] = in_engine(
                lambda flows: flows.compare(jobs, tree, hook)
            )
        comparison = compare.side_by_side(
            [(j.key, r) for j, r in zip(jobs, reports, strict=True)], budgets
        )
        if outputs.json is not None:
            write_text(outputs.json, json.dumps(comparison.to_json(), indent=2) + "\n")
        if outputs.markdown is not None:
            write_text(outputs.markdown, compare.markdown(comparison, outputs.command))
        if outputs.chart is not None:
            from pipeline.cli import chart

            chart.draw(comparison, outputs.chart)
        compare.render(comparison, summary.stdout_console())
        violations = comparison.violations()
        for line in violations:
            Console(stderr=True, soft_wrap=True).print(f"over budget: {line}", markup=False)
        return 1 if violations else 0

    return guarded(work, verbose=verbose)


def execute_verify(settings: Settings, *, verbose: bool) -> int:
    """Build twice, compare, print both digests and what differs; 1 if anything does."""

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        if settings.json_path is not None:
            check_destination(settings.json_path, option="--json")
        with progress.display(quiet=settings.quiet, env=os.environ) as hook:
            verdict = in_engine(lambda flows: flows.verify(settings, tree, hook))
        first, second = verdict.first.images[0].digest, verdict.second.images[0].digest
        warn(verdict.first.warnings)
        cache = verdict.first.go_cache
        if settings.json_path is not None:
            document = {
                "schema_version": 1,
                "kind": "verify",
                "reproducible": verdict.reproducible,
                "digests": [first, second],
                "differences": list(verdict.differences),
                "go_cache": None if cache is None else dataclasses.asdict(cache),
            }
            write_text(settings.json_path, json.dumps(document, indent=2) + "\n")
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"first build:  {first}", markup=False)
        if cache is not None:
            console.print(f"  {cache.summary()}", markup=False)
        console.print(
            f"second build: {second} (every step run again, on fresh Go caches)", markup=False
        )
        if verdict.reproducible:
            console.print(f"reproducible: {settings.tag} builds to the same digest", markup=False)
            return 0
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for line in verdict.differences:
            err.print(f"differs: {line}", markup=False)
        err.print(f"error: {settings.tag} is not reproducible: the two builds differ", markup=False)
        return 1

    return guarded(work, verbose=verbose)


def say_error(err: Console, error: UsageError | PipelineError, who: str = "") -> None:
    """A failure on stderr: the compiler's or test's own output where there is some, then
    one line, `error: [who]what`."""
    if isinstance(error, BuildFailed) and error.detail:
        err.print(error.detail, markup=False)
    err.print(f"error: {who}{error}", markup=False)


def guarded(work: Callable[[], int], *, verbose: bool) -> int:
    """Run `work`, stopped as Ctrl-C stops it by SIGINT, SIGTERM or SIGHUP (pipeline.stopping);
    errors become one line and an exit code (2 usage, 1 failure; 130, 143, 129 stopped)."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with stopping.handled():
        try:
            return work()
        except (UsageError, PipelineError) as error:
            if stopping.received() is not None:
                return _stopped(err)  # the error is the stop's doing: say the stop
            if verbose:
                traceback.print_exc()
            say_error(err, error)
            if isinstance(error, EngineUnavailable):
                leave_dagger_run(error)  # last: it may end the `dagger run` above us
            return 2 if isinstance(error, UsageError) else 1
        except KeyboardInterrupt:
            return _stopped(err)


def _stopped(err: Console) -> int:
    signum = stopping.received() or signal.SIGINT  # KeyboardInterrupt alone: Ctrl-C's
    err.print(stopping.said(signum), markup=False)
    return stopping.exit_code(signum)
