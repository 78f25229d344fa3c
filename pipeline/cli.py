"""The command line: flags → Settings → runner → report and exit code. The only module that
imports Typer. Dagger is imported only once a build starts, so `--help` and bad flags answer
at once."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import tomllib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from pipeline.errors import BuildFailed, PipelineError, UsageError
from pipeline.outputs import check_destination, write_text
from pipeline.provenance import read_provenance
from pipeline.settings import (
    DEFAULT_GO_IMAGE,
    DEFAULT_NAME,
    DEFAULT_RUNTIME_IMAGE,
    DEFAULT_SOURCE,
    SCRATCH,
    Secret,
    Settings,
    Variant,
    check_chart_path,
    check_name,
    check_package,
    check_registry_auth,
    check_user,
    default_output,
    image_key,
    parse_budget,
    parse_image_ref,
    parse_platform,
)
from pipeline.source import inspect_source

PASSWORD_ENV = "PIPELINE_REGISTRY_PASSWORD"

app = typer.Typer(
    help="Containerize the Go program in --source three ways and show what each costs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SUMMARIES = {
    Variant.NAIVE: "One image with the whole Go toolchain, the source and the binary: "
    "the 'before'.",
    Variant.BUILDER: "The builder pattern: a builder image compiles, the binary hops through the "
    "host into a runtime image.",
    Variant.MULTISTAGE: "The Dagger way: the binary's File goes straight from the golang "
    "container into a minimal runtime image.",
}

SourceOpt = Annotated[
    Path,
    typer.Option(help="The Go module to build.", envvar="PIPELINE_SOURCE", show_default=True),
]
PackageOpt = Annotated[
    str,
    typer.Option(
        help="The main package to build, as `go build` takes it (e.g. ./cmd/server).",
        envvar="PIPELINE_PACKAGE",
    ),
]
TestOpt = Annotated[
    bool,
    typer.Option(
        "--test/--no-test",
        help="Run `go vet ./...` and `go test ./...` first.",
        envvar="PIPELINE_TEST",
    ),
]
GoImageOpt = Annotated[
    str, typer.Option(help="The Go toolchain image.", envvar="PIPELINE_GO_IMAGE")
]
RuntimeImageOpt = Annotated[
    str,
    typer.Option(
        help=f"The base the binary ships on; `{SCRATCH}` for an empty one.",
        envvar="PIPELINE_RUNTIME_IMAGE",
    ),
]
NameOpt = Annotated[str, typer.Option(help="The image's name.", envvar="PIPELINE_NAME")]
PlatformOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--platform",
        help="Target platform, repeatable (e.g. linux/amd64 linux/arm64); default the engine's.",
        envvar="PIPELINE_PLATFORM",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        help="Where to write the OCI tarball [default: build/<name>-<variant>.tar].",
        envvar="PIPELINE_OUTPUT",
        show_default=False,
    ),
]
NoOutputOpt = Annotated[
    bool, typer.Option("--no-output", help="Write no tarball.", envvar="PIPELINE_NO_OUTPUT")
]
LoadOpt = Annotated[
    bool,
    typer.Option(
        "--load",
        help="Load the image into the local Docker, tagged <name>:<variant>.",
        envvar="PIPELINE_LOAD",
    ),
]
PublishOpt = Annotated[
    str | None,
    typer.Option(
        help="Push the image to this reference (REGISTRY/REPO:TAG).",
        envvar="PIPELINE_PUBLISH",
        show_default=False,
    ),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Registry user for --publish; the password comes from ${PASSWORD_ENV} only.",
        envvar="PIPELINE_REGISTRY_USERNAME",
        show_default=False,
    ),
]
RunOpt = Annotated[
    bool,
    typer.Option(
        "--run/--no-run", help="Run the image once and show what it printed.", envvar="PIPELINE_RUN"
    ),
]
JsonOpt = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Write the result as JSON to this path.",
        envvar="PIPELINE_JSON",
        show_default=False,
    ),
]
WatchOpt = Annotated[
    bool,
    typer.Option(
        "--watch",
        help="Keep the session open and build again whenever a Go source "
        "file changes (Ctrl-C stops).",
        envvar="PIPELINE_WATCH",
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="The image's user, UID[:GID] [default: 65532:65532 on scratch and "
        "on bases that define it, else the base's].",
        envvar="PIPELINE_USER",
        show_default=False,
    ),
]
LockOpt = Annotated[
    Path | None,
    typer.Option(
        "--lock",
        help="Lock file of base image digests: written if missing, else held "
        "to (a tag that moved fails the run).",
        envvar="PIPELINE_LOCK",
        show_default=False,
    ),
]
RegistryCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        help="CA certificate (PEM) of the --publish registry.",
        envvar="PIPELINE_REGISTRY_CA",
        show_default=False,
    ),
]
EpochOpt = Annotated[
    str | None,
    typer.Option(
        "--source-date-epoch",
        help="Timestamp of every file and date in the image "
        "[default: the last commit's time, else 0].",
        envvar="SOURCE_DATE_EPOCH",
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", help="Show tracebacks (for bug reports).", envvar="PIPELINE_VERBOSE"),
]


def build_settings(
    variant: Variant,
    *,
    source: Path,
    package: str,
    test: bool,
    go_image: str,
    runtime_image: str,
    name: str,
    platform: list[str] | None,
    output: Path | None,
    no_output: bool,
    load: bool,
    publish: str | None,
    registry_username: str | None,
    registry_password: str | None,
    run: bool,
    json_path: Path | None,
    user: str | None = None,
    lock: Path | None = None,
    registry_ca: Path | None = None,
    source_date_epoch: str | None = None,
) -> Settings:
    """Check every flag and resolve them into one Settings value (UsageError if wrong).
    builder and multistage images are reproducible: their epoch and labels come from git."""
    parse_image_ref(go_image, option="--go-image")
    if runtime_image != SCRATCH:
        parse_image_ref(runtime_image, option="--runtime-image")
    publish_ref = parse_image_ref(publish, option="--publish") if publish else None
    password = Secret(registry_password) if registry_password else None
    check_registry_auth(publish_ref, registry_username, password)
    if publish_ref is None:
        password = None  # not needed, not kept
    platforms = tuple(dict.fromkeys(parse_platform(p) for p in platform or ()))
    name = check_name(name)
    if no_output and output is not None:
        raise UsageError("--output and --no-output contradict each other: give one")
    return Settings(
        variant=variant,
        source=source,
        package=check_package(package),
        test=test,
        go_image=go_image,
        runtime_image=runtime_image,
        name=name,
        platforms=platforms,
        output=None if no_output else (output or default_output(name, variant)),
        load=load,
        publish=publish_ref,
        registry_username=registry_username,
        registry_password=password,
        run=run,
        json_path=json_path,
        provenance=(
            None if variant is Variant.NAIVE else read_provenance(source, source_date_epoch)
        ),
        user=check_user(user) if user else None,
        lock=lock,
        registry_ca=registry_ca,
    )


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


@contextlib.contextmanager
def sdk_checks_off() -> Iterator[None]:
    """Around the first import of the Dagger SDK: without its runtime argument checks.

    The SDK wraps each of its methods in a beartype check as it is imported, which costs
    about half a second of every run. beartype makes its decorator the identity while
    PYTHONOPTIMIZE is set when it decorates (it reads the variable then, by design), so the
    variable is set for the import only and put back. Our calls into the SDK are checked
    statically instead (mypy --strict); the engine still rejects a wrong argument.
    """
    before = os.environ.get("PYTHONOPTIMIZE")
    os.environ["PYTHONOPTIMIZE"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONOPTIMIZE"]
        else:
            os.environ["PYTHONOPTIMIZE"] = before


def usage_exit(error: UsageError) -> NoReturn:
    """A bad flag: one line on stderr, exit 2."""
    Console(stderr=True, soft_wrap=True).print(f"error: {error}", markup=False)
    raise typer.Exit(2) from None


def execute(settings: Settings, *, verbose: bool) -> int:
    """Run the build and print the summary; return the exit code."""

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        check_destinations(settings)
        import anyio

        with sdk_checks_off():
            from pipeline import report, runner

        result = anyio.run(runner.run, settings, tree)
        if settings.json_path is not None:
            report.write_json(result, settings.json_path)
        report.render(result, Console(highlight=False))
        return 0

    return guarded(work, verbose=verbose)


def execute_watch(settings: Settings, *, verbose: bool) -> int:
    """Build on every change until interrupted; each result as it comes."""

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        check_destinations(settings)
        import anyio

        with sdk_checks_off():
            from pipeline import report, runner

        out = Console(highlight=False)
        err = Console(stderr=True, highlight=False, soft_wrap=True)

        def show(result: report.RunReport | PipelineError) -> None:
            if isinstance(result, PipelineError):
                if isinstance(result, BuildFailed) and result.detail:
                    err.print(result.detail, markup=False)
                err.print(f"error: {result}", markup=False)
            else:
                if settings.json_path is not None:
                    report.write_json(result, settings.json_path)
                report.render(result, out)
            err.print(f"watching {tree.root} for changes (Ctrl-C stops)", markup=False)

        anyio.run(runner.watch, settings, tree, show)
        return 0

    return guarded(work, verbose=verbose)


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
        import anyio

        with sdk_checks_off():
            from pipeline import compare, runner

        reports = anyio.run(runner.compare, jobs, tree)
        comparison = compare.compare(
            [(j.key, r) for j, r in zip(jobs, reports, strict=True)], budgets
        )
        if outputs.json is not None:
            write_text(outputs.json, json.dumps(comparison.to_json(), indent=2) + "\n")
        if outputs.markdown is not None:
            write_text(outputs.markdown, compare.markdown(comparison, outputs.command))
        if outputs.chart is not None:
            from pipeline import chart

            chart.draw(comparison, outputs.chart)
        compare.render(comparison, Console(highlight=False))
        violations = comparison.violations()
        for line in violations:
            Console(stderr=True, soft_wrap=True).print(f"over budget: {line}", markup=False)
        return 1 if violations else 0

    return guarded(work, verbose=verbose)


def guarded(work: Callable[[], int], *, verbose: bool) -> int:
    """Run `work`; errors become one line and an exit code (2 usage, 1 failure, 130 ^C)."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return work()
    except (UsageError, PipelineError) as error:
        if verbose:
            traceback.print_exc()
        if isinstance(error, BuildFailed) and error.detail:
            err.print(error.detail, markup=False)
        err.print(f"error: {error}", markup=False)
        return 2 if isinstance(error, UsageError) else 1
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


def _command(variant: Variant) -> None:
    """Register the command for one variant; all share one signature."""

    def command(
        source: SourceOpt = DEFAULT_SOURCE,
        package: PackageOpt = ".",
        test: TestOpt = True,
        go_image: GoImageOpt = DEFAULT_GO_IMAGE,
        runtime_image: RuntimeImageOpt = DEFAULT_RUNTIME_IMAGE,
        name: NameOpt = DEFAULT_NAME,
        platform: PlatformOpt = None,
        output: OutputOpt = None,
        no_output: NoOutputOpt = False,
        load: LoadOpt = False,
        publish: PublishOpt = None,
        registry_username: UsernameOpt = None,
        run: RunOpt = True,
        json_path: JsonOpt = None,
        user: UserOpt = None,
        lock: LockOpt = None,
        registry_ca: RegistryCaOpt = None,
        source_date_epoch: EpochOpt = None,
        watch: WatchOpt = False,
        verbose: VerboseOpt = False,
    ) -> None:
        try:
            settings = build_settings(
                variant,
                source=source,
                package=package,
                test=test,
                go_image=go_image,
                runtime_image=runtime_image,
                name=name,
                platform=platform,
                output=output,
                no_output=no_output,
                load=load,
                publish=publish,
                registry_username=registry_username,
                registry_password=os.environ.get(PASSWORD_ENV) or None,
                run=run,
                json_path=json_path,
                user=user,
                lock=lock,
                registry_ca=registry_ca,
                source_date_epoch=source_date_epoch,
            )
        except UsageError as error:
            usage_exit(error)
        if watch:
            raise typer.Exit(execute_watch(settings, verbose=verbose))
        raise typer.Exit(execute(settings, verbose=verbose))

    command.__doc__ = SUMMARIES[variant]
    app.command(name=variant.value, help=SUMMARIES[variant])(command)


for _variant in Variant:
    _command(_variant)


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


RuntimeImagesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--runtime-image",
        help="Runtime base, repeatable: the first for builder and multistage, each further one "
        f"adds a multistage image on it (e.g. {SCRATCH}) [default: {DEFAULT_RUNTIME_IMAGE}].",
        envvar="PIPELINE_RUNTIME_IMAGE",
        show_default=False,
    ),
]
MarkdownOpt = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Write the table as Markdown to this path.",
        envvar="PIPELINE_MARKDOWN",
        show_default=False,
    ),
]
ChartOpt = Annotated[
    Path | None,
    typer.Option(
        "--chart",
        help="Draw the sizes to this .svg or .png.",
        envvar="PIPELINE_CHART",
        show_default=False,
    ),
]
MaxSizeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--max-size",
        help="Budget IMAGE=SIZE, repeatable (e.g. multistage=10MB); also "
        "read from [tool.pipeline.budgets] in pyproject.toml.",
        envvar="PIPELINE_MAX_SIZE",
        show_default=False,
    ),
]


def read_budgets(pyproject: Path, flags: list[str] | None) -> dict[str, int]:
    """Budgets from [tool.pipeline.budgets] of pyproject.toml, then --max-size (which wins)."""
    budgets: dict[str, int] = {}
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pipeline", {})
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{pyproject}: not valid TOML ({error})") from None
        section = table.get("budgets", {})
        if not isinstance(section, dict):
            raise UsageError(
                f"{pyproject}: [tool.pipeline.budgets] must be a table of IMAGE = SIZE"
            )
        for key, size in section.items():
            try:
                budgets.update([parse_budget(f"{key}={size}")])
            except UsageError:
                raise UsageError(
                    f"{pyproject}: [tool.pipeline.budgets] {key} = {size!r} is not a budget; "
                    'write e.g. multistage = "10MB"'
                ) from None
    for flag in flags or ():
        budgets.update([parse_budget(flag)])
    return budgets


def check_budget_keys(budgets: dict[str, int], jobs: tuple[Settings, ...]) -> None:
    """Every budget names an image compare makes (found before any engine work)."""
    known = [job.key for job in jobs] + [
        f"{job.key}-build" for job in jobs if job.variant is Variant.BUILDER
    ]
    for key in budgets:
        if key not in known:
            raise UsageError(
                f"budget for {key!r}: compare makes no such image ({', '.join(known)})"
            )


def compare_jobs(
    *,
    source: Path,
    package: str,
    test: bool,
    go_image: str,
    runtime_images: list[str],
    name: str,
    run: bool,
) -> tuple[Settings, ...]:
    """naive, builder and multistage on the first base, and multistage on each further one."""
    first, *extra = runtime_images
    common = {
        "source": source,
        "package": package,
        "test": test,
        "go_image": go_image,
        "name": name,
        "platform": None,
        "output": None,
        "no_output": True,
        "load": False,
        "publish": None,
        "registry_username": None,
        "registry_password": None,
        "run": run,
        "json_path": None,
    }
    jobs = [
        build_settings(variant, runtime_image=first, **common)  # type: ignore[arg-type]
        for variant in Variant
    ]
    for base in dict.fromkeys(extra):
        job = build_settings(Variant.MULTISTAGE, runtime_image=base, **common)  # type: ignore[arg-type]
        job = replace(job, label=image_key(Variant.MULTISTAGE, base))
        taken = next((j for j in jobs if j.key == job.key), None)
        if taken is not None:
            raise UsageError(
                f"--runtime-image {base} and {taken.runtime_image} would both be {job.tag}: "
                "compare them in two runs"
            )
        jobs.append(job)
    return tuple(jobs)


@app.command(name="compare")
def compare_command(
    source: SourceOpt = DEFAULT_SOURCE,
    package: PackageOpt = ".",
    test: TestOpt = True,
    go_image: GoImageOpt = DEFAULT_GO_IMAGE,
    runtime_image: RuntimeImagesOpt = None,
    name: NameOpt = DEFAULT_NAME,
    run: RunOpt = True,
    json_path: JsonOpt = None,
    markdown: MarkdownOpt = None,
    chart: ChartOpt = None,
    max_size: MaxSizeOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Build every variant in one session and show them side by side, measured."""
    try:
        jobs = compare_jobs(
            source=source,
            package=package,
            test=test,
            go_image=go_image,
            runtime_images=runtime_image or [DEFAULT_RUNTIME_IMAGE],
            name=name,
            run=run,
        )
        budgets = read_budgets(Path("pyproject.toml"), max_size)
        check_budget_keys(budgets, jobs)
        if chart is not None:
            check_chart_path(chart)
    except UsageError as error:
        usage_exit(error)
    command = "python -m pipeline " + shlex.join(sys.argv[1:])
    outputs = CompareOutputs(json_path, markdown, chart, command)
    raise typer.Exit(execute_compare(jobs, outputs, budgets, verbose=verbose))


def main() -> None:
    """Entry point: `python -m pipeline`."""
    app(prog_name="pipeline")


class Reproducible(StrEnum):
    """The variants whose images are made reproducible (naive stays naive)."""

    BUILDER = "builder"
    MULTISTAGE = "multistage"


VariantOpt = Annotated[
    Reproducible,
    typer.Option("--variant", help="Which variant to build twice.", envvar="PIPELINE_VARIANT"),
]


@app.command(name="verify")
def verify_command(
    variant: VariantOpt = Reproducible.MULTISTAGE,
    source: SourceOpt = DEFAULT_SOURCE,
    package: PackageOpt = ".",
    test: TestOpt = False,
    go_image: GoImageOpt = DEFAULT_GO_IMAGE,
    runtime_image: RuntimeImageOpt = DEFAULT_RUNTIME_IMAGE,
    name: NameOpt = DEFAULT_NAME,
    platform: PlatformOpt = None,
    user: UserOpt = None,
    source_date_epoch: EpochOpt = None,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Build twice, the second time with every step run again, and compare the digests;
    name what differs (layer, file, config field). Exit 1 if anything does."""
    try:
        settings = build_settings(
            Variant(variant.value),
            source=source,
            package=package,
            test=test,
            go_image=go_image,
            runtime_image=runtime_image,
            name=name,
            platform=platform,
            output=None,
            no_output=True,
            load=False,
            publish=None,
            registry_username=None,
            registry_password=None,
            run=False,
            json_path=json_path,
            user=user,
            source_date_epoch=source_date_epoch,
        )
    except UsageError as error:
        usage_exit(error)

    def work() -> int:
        tree = inspect_source(settings.source, settings.package)
        if settings.json_path is not None:
            check_destination(settings.json_path, option="--json")
        import anyio

        with sdk_checks_off():
            from pipeline import runner

        verdict = anyio.run(runner.verify, settings, tree)
        first, second = verdict.first.images[0].digest, verdict.second.images[0].digest
        if settings.json_path is not None:
            document = {
                "schema_version": 1,
                "kind": "verify",
                "reproducible": verdict.reproducible,
                "digests": [first, second],
                "differences": list(verdict.differences),
            }
            write_text(settings.json_path, json.dumps(document, indent=2) + "\n")
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"first build:  {first}", markup=False)
        console.print(f"second build: {second} (every step run again)", markup=False)
        if verdict.reproducible:
            console.print(f"reproducible: {settings.tag} builds to the same digest", markup=False)
            return 0
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for line in verdict.differences:
            err.print(f"differs: {line}", markup=False)
        err.print(f"error: {settings.tag} is not reproducible: the two builds differ", markup=False)
        return 1

    raise typer.Exit(guarded(work, verbose=verbose))
