"""The command line: flags → Settings → pipeline.cli.launch → exit code. With pipeline.cli.options
(the flags' declarations), the only module that imports Typer. Dagger is imported only once a
build starts, so `--help` and bad flags answer at once."""

from __future__ import annotations

import atexit
import gc
import inspect
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from pipeline.cli import config
from pipeline.cli.checks import (
    apart,
    build_settings,
    check_chart_path,
    image_key,
)
from pipeline.cli.command_options import (
    ChartOpt,
    ConfigOpt,
    ImageOpt,
    MarkdownOpt,
    MaxSizeOpt,
    Reproducible,
    RuntimeImagesOpt,
    VariantOpt,
    VerboseOpt,
    WatchOpt,
)
from pipeline.cli.compare import check_budget_keys, read_budgets
from pipeline.cli.launch import (
    CompareOutputs,
    execute,
    execute_compare,
    execute_images,
    execute_verify,
    execute_watch,
)
from pipeline.cli.options import (
    BuildFlags,
    CacheFromOpt,
    EpochOpt,
    GoImageOpt,
    HelperImageOpt,
    JsonOpt,
    NameOpt,
    PackageOpt,
    PlatformOpt,
    QuietOpt,
    RegistryCaOpt,
    RegistryMirrorOpt,
    RunOpt,
    RuntimeImageOpt,
    SourceOpt,
    TestOpt,
    UsernameOpt,
    UserOpt,
    flag_parameters,
    option,
)
from pipeline.errors import NETRC_ENV, PASSWORD_ENV, UsageError
from pipeline.image.signing import SIGN_PASSWORD_ENV
from pipeline.settings import (
    DEFAULT_GO_IMAGE,
    DEFAULT_HELPER_IMAGE,
    DEFAULT_NAME,
    DEFAULT_RUNTIME_IMAGE,
    DEFAULT_SOURCE,
    Settings,
    Variant,
)

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


def usage_exit(error: UsageError) -> NoReturn:
    """A bad flag: one line on stderr, exit 2."""
    Console(stderr=True, soft_wrap=True).print(f"error: {error}", markup=False)
    raise typer.Exit(2) from None


def _command(variant: Variant) -> None:
    """Register the command for one variant; all share one signature, BuildFlags' fields."""

    def command(
        ctx: typer.Context,
        *,
        watch: bool = False,
        verbose: bool = False,
        config_file: Path | None = None,
        image: list[str] | None = None,
        **given: Any,
    ) -> None:
        try:
            # Read once, then gone from the environment: no child (docker, the dagger CLI)
            # inherits it.
            password = os.environ.pop(PASSWORD_ENV, None) or None
            netrc = os.environ.pop(NETRC_ENV, None) or None
            signing = os.environ.pop(SIGN_PASSWORD_ENV, None) or None
            flags = BuildFlags(
                **given, registry_password=password, netrc_text=netrc, sign_password=signing
            )
            chosen = config.applied(flags, config_file, ctx.get_parameter_source, image or ())
            jobs = apart(tuple(build_settings(variant, f) for f in chosen), watch=watch)
        except UsageError as error:
            usage_exit(error)
        if len(jobs) > 1:
            raise typer.Exit(execute_images(jobs, verbose=verbose))
        if watch:
            raise typer.Exit(execute_watch(jobs[0], verbose=verbose))
        raise typer.Exit(execute(jobs[0], verbose=verbose))

    own = (
        ("watch", False, WatchOpt),
        ("verbose", False, VerboseOpt),
        ("config_file", None, ConfigOpt),
        ("image", None, ImageOpt),
    )
    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    signature = flag_parameters(BuildFlags, *(option(*o) for o in own))
    command.__signature__ = signature.replace(parameters=[context, *signature.parameters.values()])  # type: ignore[attr-defined]
    command.__doc__ = SUMMARIES[variant]
    app.command(name=variant.value, help=SUMMARIES[variant])(command)


for _variant in Variant:
    _command(_variant)


def compare_jobs(flags: BuildFlags, runtime_images: list[str]) -> tuple[Settings, ...]:
    """naive, builder and multistage on the first base, and multistage on each further one."""
    first, *extra = runtime_images
    common = replace(flags, runtime_image=first)
    jobs = [build_settings(variant, common) for variant in Variant]
    for base in dict.fromkeys(extra):
        job = build_settings(Variant.MULTISTAGE, replace(common, runtime_image=base))
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
    ctx: typer.Context,
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
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    config_file: ConfigOpt = None,
    image: ImageOpt = None,
    registry_mirror: RegistryMirrorOpt = None,
) -> None:
    """Build every variant in one session and show them side by side, measured."""
    try:
        flags = BuildFlags(
            source=source,
            package=package,
            test=test,
            go_image=go_image,
            name=name,
            run=run,
            quiet=quiet,
            no_output=True,
            registry_mirror=registry_mirror,
        )
        flags = config.one_image(
            flags, config_file, ctx.get_parameter_source, image or (), command="compare"
        )
        jobs = compare_jobs(flags, runtime_image or [flags.runtime_image])
        budgets = read_budgets(Path("pyproject.toml"), max_size)
        check_budget_keys(budgets, jobs)
        if chart is not None:
            check_chart_path(chart)
    except UsageError as error:
        usage_exit(error)
    command = "python -m pipeline " + shlex.join(sys.argv[1:])
    outputs = CompareOutputs(json_path, markdown, chart, command)
    raise typer.Exit(execute_compare(jobs, outputs, budgets, verbose=verbose))


@app.command(name="verify")
def verify_command(
    ctx: typer.Context,
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
    cache_from: CacheFromOpt = None,
    helper_image: HelperImageOpt = DEFAULT_HELPER_IMAGE,
    registry_username: UsernameOpt = None,
    registry_ca: RegistryCaOpt = None,
    registry_mirror: RegistryMirrorOpt = None,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    config_file: ConfigOpt = None,
    image: ImageOpt = None,
) -> None:
    """Build twice, the second time with every step run again on fresh Go caches (never a
    --cache-from), and compare the digests; name what differs (layer, file, config field).
    Exit 1 if anything does: with --cache-from, a poisoned cache shows up here."""
    flags = BuildFlags(
        source=source,
        package=package,
        test=test,
        go_image=go_image,
        runtime_image=runtime_image,
        name=name,
        platform=platform,
        no_output=True,
        run=False,
        json_path=json_path,
        user=user,
        source_date_epoch=source_date_epoch,
        cache_from=cache_from,
        helper_image=helper_image,
        registry_username=registry_username,
        registry_ca=registry_ca,
        registry_mirror=registry_mirror,
        registry_password=os.environ.pop(PASSWORD_ENV, None) or None,
        quiet=quiet,
    )
    try:
        flags = config.one_image(
            flags, config_file, ctx.get_parameter_source, image or (), command="verify"
        )
        settings = build_settings(Variant(variant.value), flags)
    except UsageError as error:
        usage_exit(error)
    raise typer.Exit(execute_verify(settings, verbose=verbose))


def main() -> None:
    """Entry point: `python -m pipeline`."""
    # Registered first, so it runs last, once every exit handler has: the objects the run
    # made are moved out of the garbage collector's reach, and the interpreter's last
    # collections do not walk them (the engine's schema and the SDK's types: 0.14 s of a
    # three-image run's 1.85 s). Everything the run writes is closed before then.
    atexit.register(gc.freeze)
    app(prog_name="pipeline")
