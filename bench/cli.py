"""The command line of the bench: flags → Options → bench.speed.run → tables, JSON, Markdown, exit
code; and `load`: flags → LoadOptions → bench.load.run → the same. With bench.options (the
flags' declarations), the only module of bench/ that imports Typer; nothing here imports
dagger, so `--help` and bad flags answer at once.

Run it inside the test bed's network namespace, where the registry, the Docker daemon and the
engine are:

    . tests/testbed/env && tests/testbed/exec .venv/bin/python -m bench --quick
    tests/testbed/exec .venv/bin/python -m bench load --quick

`--baseline REF` adds pipeline/ as committed at REF as a third side of every comparison
(bench/shared/baseline.py); a REF that names no commit ends the bench at once, exit 1.

`load` exits 1 when a run failed, a digest differed from its run alone, or a fault check
failed; the throughput goal is reported, not enforced (it depends on the machine).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bench.fresh import run as fresh
from bench.load import report as load_report
from bench.load import run as loads
from bench.options import (
    DEFAULT_COLD_SAMPLES,
    DEFAULT_JSON,
    DEFAULT_LOAD_JSON,
    DEFAULT_LOAD_MARKDOWN,
    DEFAULT_MARKDOWN,
    DEFAULT_SAMPLES,
    DEFAULT_WORK,
    HERE,
    PASSWORD_FLAG,
    BaselineOpt,
    BreakdownOpt,
    ColdSamplesOpt,
    DockerOpt,
    FetchOnlyOpt,
    FreshCommitsOpt,
    FreshDockerOpt,
    FreshJsonPathOpt,
    FreshMarkdownOpt,
    FreshProgramsOpt,
    FreshRegistryOpt,
    FreshSamplesOpt,
    FreshWorkOpt,
    GoImageOpt,
    JsonPathOpt,
    LoadDaggerCliOpt,
    LoadEngineOpt,
    LoadFaultsOpt,
    LoadGoImageOpt,
    LoadJsonPathOpt,
    LoadMarkdownOpt,
    LoadQuickOpt,
    LoadRegistryCaOpt,
    LoadRegistryOpt,
    LoadRegistryPasswordOpt,
    LoadRegistryUsernameOpt,
    LoadRunsOpt,
    LoadRuntimeImageOpt,
    LoadWorkOpt,
    MarkdownOpt,
    PeersOpt,
    ProgramsOpt,
    QuickOpt,
    RegistryOpt,
    RuntimeImageOpt,
    SamplesOpt,
    ScenariosOpt,
    ServicesJsonOpt,
    ServicesMarkdownOpt,
    ServicesSamplesOpt,
    WorkOpt,
)
from bench.services import run as services
from bench.shared import baseline as baselines
from bench.shared import machine
from bench.shared.programs import PROGRAMS, REPO, BenchError, install_ko
from bench.shared.sides import Workspace
from bench.shared.tables import table
from bench.signing import run as signing
from bench.speed import report
from bench.speed.run import PEERS, Options, fetch_all, run
from bench.speed.scenarios import Scenario
from pipeline.outputs import write_text

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


def _refuse_speed_flags(ctx: typer.Context) -> None:
    """The speed run's flags before a subcommand (`load`, `fresh`) are a mistake: say so."""
    sources = {p.opts[0]: ctx.get_parameter_source(p.name or "") for p in ctx.command.params}
    given = [flag for flag, source in sources.items() if source and source.name == "COMMANDLINE"]
    if given:
        raise typer.BadParameter(
            f"{', '.join(given)}: not an option of `{ctx.invoked_subcommand}`; give its "
            "own options after it"
        )


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    samples: SamplesOpt = None,
    cold_samples: ColdSamplesOpt = None,
    quick: QuickOpt = False,
    json_path: JsonPathOpt = DEFAULT_JSON,
    markdown: MarkdownOpt = DEFAULT_MARKDOWN,
    programs: ProgramsOpt = None,
    peers: PeersOpt = None,
    scenarios: ScenariosOpt = None,
    breakdown: BreakdownOpt = True,
    baseline: BaselineOpt = None,
    fetch_only: FetchOnlyOpt = False,
    work: WorkOpt = DEFAULT_WORK,
    registry: RegistryOpt = "127.0.0.1:5000",
    docker: DockerOpt = "/usr/bin/docker",
    go_image: GoImageOpt = "golang:1.26",
    runtime_image: RuntimeImageOpt = "busybox:1.35",
) -> None:
    """Time our pipeline against `docker build` and ko, side by side: same programs, same
    bases, same machine. Prints medians and ratios; writes every sample as JSON. `load`: many
    pipeline runs at once against one engine."""
    try:  # every scenario's `python -m pipeline` runs from this repository's pipeline/
        baselines.compile_ahead(REPO)
    except BenchError as err:
        Console(stderr=True).print(f"bench: {err}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    if ctx.invoked_subcommand is not None:
        _refuse_speed_flags(ctx)
        return
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


def resolve_load(
    *,
    runs: int | None,
    quick: bool,
    faults: bool,
    work: Path,
    engine: str | None,
    dagger_cli: str | None,
    registry: str | None,
    registry_username: str | None,
    registry_password: str | None,
    registry_ca: Path | None,
    go_image: str,
    runtime_image: str,
) -> loads.LoadOptions:
    """The load flags as one LoadOptions value (bad combinations and what is missing raise
    typer.BadParameter: exit 2, before any work)."""
    if quick and runs is not None:
        raise typer.BadParameter(
            f"--quick makes {loads.QUICK_RUNS} runs of hello world; drop --runs",
            param_hint="--quick",
        )
    if not engine:
        raise typer.BadParameter(
            "which engine? give a runner host (tls://HOST:PORT?ca_path=...&cert_path=..."
            "&key_path=...), or TESTBED_ENGINE_TLS_HOST (tests/testbed/env)",
            param_hint="--engine",
        )
    cli = dagger_cli or shutil.which("dagger")
    if not cli:
        raise typer.BadParameter("no dagger on PATH: give its path", param_hint="--dagger-cli")
    programs = loads.QUICK_PROGRAMS if quick else tuple(PROGRAMS)
    count = loads.QUICK_RUNS if quick else (runs or loads.DEFAULT_RUNS)
    publishes = any(r.publish for r in loads.plan(count, programs))
    login = (registry, registry_username, registry_password, registry_ca)
    flags = ("--registry", "--registry-username", PASSWORD_FLAG, "--registry-ca")
    missing = [flag for flag, value in zip(flags, login, strict=True) if not value]
    if publishes and missing:
        raise typer.BadParameter(
            f"a run publishes: give {', '.join(missing)} (or tests/testbed/env's "
            "TESTBED_AUTH_REGISTRY, TESTBED_AUTH_USER, TESTBED_AUTH_PASSWORD, TESTBED_CA)",
            param_hint=missing[0],
        )
    return loads.LoadOptions(
        runs=count,
        programs=programs,
        faults=faults,
        work=work.resolve(),
        go_image=go_image,
        runtime_image=runtime_image,
        reach=loads.Reach(
            runner_host=engine,
            cli=cli,
            registry=registry or "",
            username=registry_username or "",
            password=registry_password or "",
            ca=(registry_ca or Path()).resolve(),
        ),
        quick=quick,
    )


def masked(argv: Sequence[str]) -> list[str]:
    """The arguments with the value of --registry-password hidden: they go into the JSON."""
    shown: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            shown.append("***")
        elif arg.startswith(PASSWORD_FLAG + "="):
            shown.append(PASSWORD_FLAG + "=***")
        else:
            shown.append(arg)
        hide = arg == PASSWORD_FLAG
    return shown


@app.command("load")
def load(
    runs: LoadRunsOpt = None,
    quick: LoadQuickOpt = False,
    faults: LoadFaultsOpt = True,
    json_path: LoadJsonPathOpt = DEFAULT_LOAD_JSON,
    markdown: LoadMarkdownOpt = DEFAULT_LOAD_MARKDOWN,
    work: LoadWorkOpt = DEFAULT_WORK,
    engine: LoadEngineOpt = None,
    dagger_cli: LoadDaggerCliOpt = None,
    registry: LoadRegistryOpt = None,
    registry_username: LoadRegistryUsernameOpt = None,
    registry_password: LoadRegistryPasswordOpt = None,
    registry_ca: LoadRegistryCaOpt = None,
    go_image: LoadGoImageOpt = "golang:1.26",
    runtime_image: LoadRuntimeImageOpt = "busybox:1.35",
) -> None:
    """Many builds, one engine: N pipeline runs, each its own process, one after another and
    then all at once, against one engine (over mutual TLS); their wall times (p50, p95,
    max), the throughput at once against one after another, whether each digest is that of
    its run alone, and a client SIGKILLed mid-build while the others go on."""
    console, log = Console(), Console(stderr=True)
    options = resolve_load(
        runs=runs,
        quick=quick,
        faults=faults,
        work=work,
        engine=engine,
        dagger_cli=dagger_cli,
        registry=registry,
        registry_username=registry_username,
        registry_password=registry_password,
        registry_ca=registry_ca,
        go_image=go_image,
        runtime_image=runtime_image,
    )
    command = shlex.join(["python", "-m", "bench", *masked(sys.argv[1:])])
    try:
        results = loads.run(options, command, lambda line: log.print(line, highlight=False))
    except BenchError as err:
        log.print(f"bench load: {err}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    load_report.render(results, console)
    load_report.write(results, json_path, markdown)
    log.print(f"wrote {json_path}" + (f" and {markdown}" if markdown else ""), highlight=False)
    failed = [c.name for c in results.checks() if c.enforced and not c.passed]
    if failed:
        log.print(f"bench load: FAIL: {'; '.join(failed)}", highlight=False, markup=False)
        raise typer.Exit(code=1)


def _tools(m: dict[str, Any]) -> str:
    """The machine and the sides' tools (those the run used), as `fresh`, `services` and
    `signing` name them."""
    tools = [f"{name} {m[key]}" for name, key in (("docker", "docker_server"), ("ko", "ko"))
             if m.get(key)]  # fmt: skip
    return f"{machine.sentence(m, model=False, kernel=False)}; " + ", ".join(
        [*tools, f"dagger SDK {m.get('dagger_sdk', '?')}"]
    )


def _workspace(work: Path, registry: str, docker: str, ko: Path) -> Workspace:
    """The workspace of `fresh` and `services`: the test bed's bases, on linux/amd64."""
    return Workspace(
        root=work.resolve(),
        registry=registry,
        docker=docker,
        ko=ko,
        go_image="golang:1.26",
        runtime_image="busybox:1.35",
        platform="linux/amd64",
    )


@app.command("fresh")
def fresh_command(
    programs: FreshProgramsOpt = None,
    samples: FreshSamplesOpt = 3,
    commits: FreshCommitsOpt = fresh.COMMITS,
    json_path: FreshJsonPathOpt = HERE / "results" / "fresh.json",
    markdown: FreshMarkdownOpt = HERE / "results" / "fresh.md",
    work: FreshWorkOpt = DEFAULT_WORK,
    registry: FreshRegistryOpt = "127.0.0.1:5000",
    docker: FreshDockerOpt = "/usr/bin/docker",
) -> None:
    """The fresh-runner scenario: a one-line change built by each side from no local state,
    with what it saved last time in the registry (ours with --cache-from/--cache-to, ours
    without, docker with its registry cache, ko with a CI cache step). Ours builds on the
    test bed's fresh runner, a second engine started anew on an empty state directory."""
    log = Console(stderr=True)
    chosen = _choices(programs, list(PROGRAMS), "--programs") or tuple(PROGRAMS)
    workspace = _workspace(work, registry, docker, work.resolve() / "bin" / "ko")
    command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    try:
        results = fresh.run(
            workspace, chosen, samples, commits, lambda line: log.print(line, highlight=False)
        )
    except BenchError as err:
        log.print(f"bench fresh: {err}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["command"] = command
    m = machine.describe(docker=docker, ko=workspace.ko)
    results["machine"] = m
    text = fresh.markdown(results, command, _tools(m))
    Console().print(text, markup=False, highlight=False)
    write_text(json_path, json.dumps(results, indent=2) + "\n")
    write_text(markdown, text)
    log.print(f"wrote {json_path} and {markdown}", highlight=False)


def _measured(
    name: str,
    title: str,
    scenario: Any,
    measure: Callable[[Callable[[str], None]], dict[str, Any]],
    paths: tuple[Path, Path],
    docker: str | None,
    ko: Path | None,
    samples: int,
) -> None:
    """Run a scenario module's `measure`, then print its table and write its JSON and
    Markdown, naming the machine and the tools; one line and exit 1 if it fails."""
    log = Console(stderr=True)
    try:
        results = measure(lambda line: log.print(line, highlight=False))
    except BenchError as err:
        log.print(f"bench {name}: {err}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    m = machine.describe(docker=docker, ko=ko)
    results |= {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": m,
        "samples_per_side": samples,
    }
    header, rows = scenario.cells(results)
    Console().print(table(title, header, rows))
    json_path, markdown = paths
    write_text(json_path, json.dumps(results, indent=2) + "\n")
    write_text(markdown, scenario.markdown(results, command, _tools(m)))
    log.print(f"wrote {json_path} and {markdown}", highlight=False)


@app.command("services")
def services_command(
    samples: ServicesSamplesOpt = 3,
    json_path: ServicesJsonOpt = HERE / "results" / "services.json",
    markdown: ServicesMarkdownOpt = HERE / "results" / "services.md",
    work: FreshWorkOpt = DEFAULT_WORK,
    registry: FreshRegistryOpt = "127.0.0.1:5000",
    docker: FreshDockerOpt = "/usr/bin/docker",
) -> None:
    """Three services of one repository (examples/service and a third main), a one-line change
    to the package they share: ours (one run, one session) against three `docker build`s and
    one `ko build` of the three import paths, as ratios of medians."""
    from bench.speed.run import KO_VERSION

    ko = work.resolve() / "bin" / "ko"

    def measure(say: Callable[[str], None]) -> dict[str, Any]:
        installed = install_ko(KO_VERSION, work.resolve())
        return services.run(_workspace(work, registry, docker, installed), samples, say)

    _measured(
        "services", "three services, one-line change to a shared package", services, measure,
        (json_path, markdown), docker, ko, samples,
    )  # fmt: skip


@app.command("signing")
def signing_command(
    samples: ServicesSamplesOpt = 5,
    json_path: ServicesJsonOpt = HERE / "results" / "signing.json",
    markdown: ServicesMarkdownOpt = HERE / "results" / "signing.md",
    work: FreshWorkOpt = DEFAULT_WORK,
    registry: FreshRegistryOpt = "127.0.0.1:5000",
    docker: FreshDockerOpt = "/usr/bin/docker",
) -> None:
    """What --sign-key adds to --publish (go-src/, warm, a new version each sample) against
    the unsigned publish followed by `cosign sign`, as ko's users sign."""
    workspace = _workspace(work, registry, docker, work.resolve() / "bin" / "ko")
    _measured(
        "signing", "what signing adds to a publish", signing, lambda say: signing.run(
            workspace, samples, say), (json_path, markdown), None, None, samples,
    )  # fmt: skip
