"""The bench's flags: each one's declaration (help text, environment variable, default
shown), for bench.cli's commands (the speed run, `load`, `fresh`), and the defaults they
name. With bench.cli, the only module of bench/ that imports Typer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.load import run as loads
from bench.shared.programs import PROGRAMS
from bench.speed.run import PEERS
from bench.speed.scenarios import Scenario

HERE = Path(__file__).resolve().parent  # bench/
DEFAULT_JSON = HERE / "results" / "bench.json"
DEFAULT_MARKDOWN = HERE / "results" / "bench.md"
DEFAULT_LOAD_JSON = HERE / "results" / "load.json"
DEFAULT_LOAD_MARKDOWN = HERE / "results" / "load.md"
PASSWORD_FLAG = "--registry-password"
DEFAULT_WORK = HERE / ".work"
DEFAULT_SAMPLES = 5
# A cold sample costs a full compile of the standard library and the dependencies, on both
# sides, in both comparisons: with 2, the default run took over 15 minutes on 2 cores.
DEFAULT_COLD_SAMPLES = 1


SamplesOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Samples of each side in each warm scenario.",
        show_default=str(DEFAULT_SAMPLES),
    ),
]
ColdSamplesOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Samples of each side in the cold scenario.",
        show_default=str(DEFAULT_COLD_SAMPLES),
    ),
]
QuickOpt = Annotated[
    bool,
    typer.Option(help="1 sample of each, hello world only: a smoke run for CI (< 3 min)."),
]
JsonPathOpt = Annotated[
    Path, typer.Option("--json", help="Where to write every raw sample, as JSON.")
]
MarkdownOpt = Annotated[Path | None, typer.Option(help="Where to write the tables as Markdown.")]
ProgramsOpt = Annotated[
    list[str] | None,
    typer.Option(
        help=f"Programs to build, comma-separated: {', '.join(PROGRAMS)}.",
        show_default="all",
    ),
]
PeersOpt = Annotated[
    list[str] | None,
    typer.Option(
        help=f"Peers to compare with, comma-separated: {', '.join(PEERS)}.",
        show_default="both",
    ),
]
ScenariosOpt = Annotated[
    list[str] | None,
    typer.Option(
        help=f"Scenarios, comma-separated: {', '.join(Scenario)}.",
        show_default="all",
    ),
]
BreakdownOpt = Annotated[
    bool, typer.Option("--breakdown/--no-breakdown", help="Time the parts of one of our runs.")
]
BaselineOpt = Annotated[
    str | None,
    typer.Option(
        metavar="REF",
        help="Also time pipeline/ as committed at this git revision, as a third side of "
        "every comparison (same scenarios, same samples), and show before and after.",
        show_default="none",
    ),
]
FetchOnlyOpt = Annotated[
    bool,
    typer.Option(
        help="Only fetch the programs and ko (needs the Go module proxy, so run it outside "
        "the test bed's namespace), then exit."
    ),
]
WorkOpt = Annotated[Path, typer.Option(help="Work directory (git-ignored): sources, ko, tarballs.")]
RegistryOpt = Annotated[
    str, typer.Option(help="The registry ours and ko push to.", envvar="TESTBED_REGISTRY")
]
DockerOpt = Annotated[
    str,
    typer.Option(help="The Docker client (one with BuildKit).", envvar="TESTBED_DOCKER"),
]
GoImageOpt = Annotated[str, typer.Option(help="The Go toolchain image.")]
RuntimeImageOpt = Annotated[str, typer.Option(help="The runtime base.")]
LoadRunsOpt = Annotated[
    int | None,
    typer.Option(
        min=2,
        help="Pipeline runs in each pass, taken in turn from the mix: hello world and age, "
        "multistage and builder, two platforms, one --publish.",
        show_default=str(loads.DEFAULT_RUNS),
    ),
]
LoadQuickOpt = Annotated[
    bool,
    typer.Option(
        help=f"{loads.QUICK_RUNS} runs, hello world only (multistage, builder, two "
        "platforms, --publish): a smoke run."
    ),
]
LoadFaultsOpt = Annotated[
    bool,
    typer.Option(
        "--faults/--no-faults",
        help="After the timed passes, the fault pass: the runs at once again while one "
        "more client is SIGKILLed mid-build; PASS/FAIL per check.",
    ),
]
LoadJsonPathOpt = Annotated[
    Path, typer.Option("--json", help="Where to write every run of every pass, as JSON.")
]
LoadMarkdownOpt = Annotated[
    Path | None, typer.Option(help="Where to write the tables as Markdown.")
]
LoadWorkOpt = Annotated[
    Path, typer.Option(help="Work directory (git-ignored): sources, tarballs, reports.")
]
LoadEngineOpt = Annotated[
    str | None,
    typer.Option(
        metavar="RUNNER_HOST",
        envvar="TESTBED_ENGINE_TLS_HOST",
        help="The engine every run reaches, as _EXPERIMENTAL_DAGGER_RUNNER_HOST: "
        "tls://HOST:PORT?ca_path=...&cert_path=...&key_path=... for mutual TLS.",
        show_default=False,
    ),
]
LoadDaggerCliOpt = Annotated[
    str | None,
    typer.Option(
        envvar="_EXPERIMENTAL_DAGGER_CLI_BIN",
        help="The dagger CLI the runs' SDK starts.",
        show_default="dagger on PATH",
    ),
]
LoadRegistryOpt = Annotated[
    str | None,
    typer.Option(
        envvar="TESTBED_AUTH_REGISTRY",
        help="The registry (with a login) the --publish run pushes to, as "
        "REGISTRY/load/PROGRAM:TAG.",
        show_default=False,
    ),
]
LoadRegistryUsernameOpt = Annotated[
    str | None,
    typer.Option(envvar="TESTBED_AUTH_USER", help="Its user.", show_default=False),
]
LoadRegistryPasswordOpt = Annotated[
    str | None,
    typer.Option(
        PASSWORD_FLAG,
        envvar=["PIPELINE_REGISTRY_PASSWORD", "TESTBED_AUTH_PASSWORD"],
        help="Its password; better from the environment. Given to the --publish run "
        "alone, in PIPELINE_REGISTRY_PASSWORD; never printed or written.",
        show_default=False,
    ),
]
LoadRegistryCaOpt = Annotated[
    Path | None,
    typer.Option(envvar="TESTBED_CA", help="Its CA (PEM).", show_default=False),
]
LoadGoImageOpt = Annotated[str, typer.Option(help="The Go toolchain image.")]
LoadRuntimeImageOpt = Annotated[
    str, typer.Option(help="The runtime base (two-platform runs: scratch).")
]
FreshProgramsOpt = Annotated[list[str] | None, typer.Option(help="Programs to build (repeatable).")]
FreshSamplesOpt = Annotated[int, typer.Option(min=1, help="Timed samples of each side.")]
FreshCommitsOpt = Annotated[
    int, typer.Option(min=2, help="Successive commits for the artifact's size.")
]
FreshJsonPathOpt = Annotated[Path, typer.Option("--json")]
FreshMarkdownOpt = Annotated[Path, typer.Option()]
FreshWorkOpt = Annotated[Path, typer.Option()]
FreshRegistryOpt = Annotated[str, typer.Option(envvar="TESTBED_REGISTRY")]
FreshDockerOpt = Annotated[str, typer.Option(envvar="TESTBED_DOCKER")]

ServicesSamplesOpt = Annotated[
    int, typer.Option("--samples", min=1, help="Samples of each side of the services scenario.")
]
ServicesJsonOpt = Annotated[
    Path, typer.Option("--json", help="Write every sample and the ratios as JSON here.")
]
ServicesMarkdownOpt = Annotated[
    Path, typer.Option("--markdown", help="Write the table as Markdown here.")
]
