"""The command line of the bench: flags → Options → bench.run → tables, JSON, Markdown, exit
code. The only module of bench/ that imports Typer; nothing here imports dagger, so `--help`
and bad flags answer at once.

Run it inside the test bed's network namespace, where the registry, the Docker daemon and the
engine are:

    . tests/testbed/env && tests/testbed/exec .venv/bin/python -m bench --quick

`--baseline REF` adds pipeline/ as committed at REF as a third side of every comparison
(bench/baseline.py); a REF that names no commit ends the bench at once, exit 1.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bench import baseline as baselines
from bench import report
from bench.programs import PROGRAMS, BenchError
from bench.run import PEERS, Options, fetch_all, run
from bench.scenarios import Scenario

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "bench.json"
DEFAULT_MARKDOWN = HERE / "results" / "bench.md"
DEFAULT_WORK = HERE / ".work"
DEFAULT_SAMPLES = 5
# A cold sample costs a full compile of the standard library and the dependencies, on both
# sides, in both comparisons: with 2, the default run took over 15 minutes on 2 cores.
DEFAULT_COLD_SAMPLES = 1

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _choices(value: list[str] | None, allowed: list[str], flag: str) -> tuple[str, ...] | None:
    """Comma-separated or repeated values, each one of `allowed`, in the order given."""
    if not value:
        return None
    chosen = [v.strip() for item in value for v in item.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"{', '.join(unknown) or '(none)'}: choose from {', '.join(allowed)}",
            param_hint=flag,
        )
    return tuple(dict.fromkeys(chosen))


def resolve(
    *,
    samples: int | None,
    cold_samples: int | None,
    quick: bool,
    programs: list[str] | None,
    peers: list[str] | None,
    scenarios: list[str] | None,
    work: Path,
    registry: str,
    docker: str,
    go_image: str,
    runtime_image: str,
    breakdown: bool,
    baseline: str | None = None,
) -> Options:
    """The flags as one Options value (bad combinations raise typer.BadParameter: exit 2; a
    --baseline that names no revision raises BenchError: exit 1)."""
    chosen_programs = _choices(programs, list(PROGRAMS), "--programs")
    if quick and (samples is not None or cold_samples is not None):
        raise typer.BadParameter(
            "--quick takes 1 sample of each; drop --samples", param_hint="--quick"
        )
    if quick and chosen_programs not in (None, ("helloworld",)):
        raise typer.BadParameter(
            "--quick builds hello world only; drop --programs", param_hint="--quick"
        )
    n = 1 if quick else (samples or DEFAULT_SAMPLES)
    return Options(
        samples=n,
        cold_samples=1 if quick else (cold_samples or DEFAULT_COLD_SAMPLES),
        programs=("helloworld",) if quick else (chosen_programs or tuple(PROGRAMS)),
        peers=_choices(peers, list(PEERS), "--peers") or PEERS,
        scenarios=tuple(
            Scenario(s)
            for s in (_choices(scenarios, [str(s) for s in Scenario], "--scenarios") or Scenario)
        ),
        work=work.resolve(),
        registry=registry,
        docker=docker,
        go_image=go_image,
        runtime_image=runtime_image,
        breakdown=breakdown,
        quick=quick,
        baseline=baselines.resolve(baseline, work) if baseline is not None else None,
    )


@app.command()
def main(
    samples: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Samples of each side in each warm scenario.",
            show_default=str(DEFAULT_SAMPLES),
        ),
    ] = None,
    cold_samples: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Samples of each side in the cold scenario.",
            show_default=str(DEFAULT_COLD_SAMPLES),
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(help="1 sample of each, hello world only: a smoke run for CI (< 3 min)."),
    ] = False,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write every raw sample, as JSON.")
    ] = DEFAULT_JSON,
    markdown: Annotated[
        Path | None, typer.Option(help="Where to write the tables as Markdown.")
    ] = DEFAULT_MARKDOWN,
    programs: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Programs to build, comma-separated: {', '.join(PROGRAMS)}.",
            show_default="all",
        ),
    ] = None,
    peers: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Peers to compare with, comma-separated: {', '.join(PEERS)}.",
            show_default="both",
        ),
    ] = None,
    scenarios: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Scenarios, comma-separated: {', '.join(Scenario)}.",
            show_default="all",
        ),
    ] = None,
    breakdown: Annotated[
        bool, typer.Option("--breakdown/--no-breakdown", help="Time the parts of one of our runs.")
    ] = True,
    baseline: Annotated[
        str | None,
        typer.Option(
            metavar="REF",
            help="Also time pipeline/ as committed at this git revision, as a third side of "
            "every comparison (same scenarios, same samples), and show before and after.",
            show_default="none",
        ),
    ] = None,
    fetch_only: Annotated[
        bool,
        typer.Option(
            help="Only fetch the programs and ko (needs the Go module proxy, so run it outside "
            "the test bed's namespace), then exit."
        ),
    ] = False,
    work: Annotated[
        Path, typer.Option(help="Work directory (git-ignored): sources, ko, tarballs.")
    ] = DEFAULT_WORK,
    registry: Annotated[
        str, typer.Option(help="The registry ours and ko push to.", envvar="TESTBED_REGISTRY")
    ] = "127.0.0.1:5000",
    docker: Annotated[
        str,
        typer.Option(help="The Docker client (one with BuildKit).", envvar="TESTBED_DOCKER"),
    ] = "/usr/bin/docker",
    go_image: Annotated[str, typer.Option(help="The Go toolchain image.")] = "golang:1.26",
    runtime_image: Annotated[str, typer.Option(help="The runtime base.")] = "busybox:1.35",
) -> None:
    """Time our pipeline against `docker build` and ko, side by side: same programs, same
    bases, same machine. Prints medians and ratios; writes every sample as JSON."""
    console, log = Console(), Console(stderr=True)
    try:
        options = resolve(
            samples=samples,
            cold_samples=cold_samples,
            quick=quick,
            programs=programs,
            peers=peers,
            scenarios=scenarios,
            work=work,
            registry=registry,
            docker=docker,
            go_image=go_image,
            runtime_image=runtime_image,
            breakdown=breakdown,
            baseline=baseline,
        )
        if fetch_only:
            for source in fetch_all(options):
                log.print(f"fetched {source}", highlight=False)
            return
        command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
        results = run(options, command, lambda line: log.print(line, highlight=False))
    except BenchError as err:
        log.print(f"bench: {err}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    report.render(results, console)
    report.write(results, json_path, markdown)
    log.print(f"wrote {json_path}" + (f" and {markdown}" if markdown else ""), highlight=False)
