"""The bench itself: for each program, each comparison (ours against docker, ours against ko)
and each scenario, every side of the comparison (ours, the peer, and with --baseline the
baseline's ours) N samples each, alternately: sample i runs the sides in an order rotated by i,
so that none always goes first. Then each side's image size against the floor, and where the
time of one of our runs goes.

The watch scenario (against docker only) starts our --watch process (and the baseline's) once
per program, samples it alternately with docker's one-shot builds, and stops it (SIGINT) when
its samples are done, before anything else runs: an idle session would hold part of the
engine's cache through the next cold start's prune.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.shared import baseline as baselines
from bench.shared import machine
from bench.shared.baseline import Baseline
from bench.shared.programs import PROGRAMS, BenchError, Program, fetch, floor, go_env, install_ko
from bench.shared.sides import Docker, Ko, Ours, Run, Side, Workspace
from bench.speed import breakdown
from bench.speed.report import Breakdown, ProgramInfo, Results, Sample, Size
from bench.speed.scenarios import Scenario, for_peer, prepared
from bench.speed.sizes import docker_save_uncompressed, registry_image
from bench.speed.watch import INTERRUPTED, OursWatch

PEERS = ("docker", "ko")
KO_VERSION = "v0.19.1"
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """A bench run, resolved once from the command line."""

    samples: int
    cold_samples: int
    programs: tuple[str, ...]
    peers: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    work: Path
    registry: str
    docker: str
    go_image: str
    runtime_image: str
    breakdown: bool = True
    quick: bool = False  # a smoke run: the breakdown is timed once, without --test
    baseline: Baseline | None = None  # --baseline REF: a third side in every comparison


def _host_platform() -> str:
    done = subprocess.run(
        ["go", "env", "GOOS", "GOARCH"], capture_output=True, text=True, check=False, env=go_env()
    )
    os_, arch = [*done.stdout.split(), "linux", "amd64"][:2]
    return f"{os_}/{arch}"


def fetch_all(options: Options) -> list[Path]:
    """Fill the module cache: the programs' sources and ko (needs the Go module proxy)."""
    sources = [fetch(PROGRAMS[name], options.work) for name in options.programs]
    if "ko" in options.peers:
        install_ko(KO_VERSION, options.work)
    return sources


def _peer(name: str, workspace: Workspace) -> Side:
    return Docker(workspace) if name == "docker" else Ko(workspace)


def _sizes(
    program: Program, floor_bytes: int, sides: dict[str, Side], samples: list[Sample]
) -> list[Size]:
    """Each side's last image: ours from its tarball and from the registry, docker's pushed
    there, ko's where it pushed."""
    sizes: list[Size] = []
    exported = [s for s in samples if s.program == program.name and s.side == "ours (export)"]
    if exported:
        d = exported[-1].detail
        ref = f"tarball ({program.name}, OCI)"
        sizes.append(
            Size(
                program.name,
                "ours (export)",
                ref,
                d["uncompressed"],
                d["compressed"],
                d["layers"],
                floor_bytes,
            )
        )
    for name, side in sides.items():
        if isinstance(side, Ours) and not side.publish:
            continue
        if isinstance(side, Docker):
            side.push(program)
        image = registry_image(side.image_ref(program), side.workspace.platform)
        sizes.append(
            Size(
                program.name,
                name,
                image.ref,
                image.uncompressed,
                image.compressed,
                image.layers,
                floor_bytes,
            )
        )
    return sizes


def rotated(sides: Sequence[T], index: int) -> list[T]:
    """The order of the sides in sample `index`: each goes first in turn."""
    k = index % len(sides)
    return [*sides[k:], *sides[:k]]


@contextlib.contextmanager
def watching(
    watchers: Sequence[OursWatch], program: Program, source: Path, say: Callable[[str], None]
) -> Iterator[None]:
    """The watch processes started (their first builds done, untimed), and stopped with
    SIGINT afterwards, whatever happened; a process that does not exit 130 then is an error."""
    try:
        for watcher in watchers:
            seconds = watcher.start(program, source, say)
            say(f"{program.name}: {watcher.name} first build done in {seconds:.2f}s (untimed)")
        yield
    except BaseException:
        for watcher in watchers:
            with contextlib.suppress(Exception):
                watcher.stop()
        raise
    codes = {watcher.name: watcher.stop() for watcher in watchers}
    wrong = {name: code for name, code in codes.items() if code != INTERRUPTED}
    if wrong:
        raise BenchError(
            "; ".join(
                f"{name} exited {code} on SIGINT, not {INTERRUPTED}" for name, code in wrong.items()
            )
        )


@dataclass
class _Bench:
    """One bench run under way: its options, where each side builds, and what it measured."""

    options: Options
    workspace: Workspace
    say: Callable[[str], None]
    begin: float
    nonces: Iterator[str]
    baseline_watches: bool = False
    samples: list[Sample] = field(default_factory=list)
    programs: list[ProgramInfo] = field(default_factory=list)
    sizes: list[Size] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)


def _prepare_baseline(options: Options, say: Callable[[str], None]) -> bool:
    """Extract --baseline's pipeline/; whether it has --watch (for the watch scenario)."""
    baseline = options.baseline
    if baseline is None:
        return False
    say(f"baseline: pipeline/ at {baseline.ref} ({baseline.short}) into {baseline.directory}")
    baselines.extract(baseline)
    if Scenario.WATCH not in options.scenarios:
        return False
    watches = baselines.has_watch(baseline)
    if not watches:
        say(f"baseline: {baseline.short} has no --watch; the watch scenario runs without it")
    return watches


def run(options: Options, command: str, say: Callable[[str], None]) -> Results:
    """Run the whole bench; `say` gets one line per sample."""
    begin = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    baseline_watches = _prepare_baseline(options, say)
    ko = install_ko(KO_VERSION, options.work) if "ko" in options.peers else None
    workspace = Workspace(
        root=options.work,
        registry=options.registry,
        docker=options.docker,
        ko=ko or Path("ko"),
        go_image=options.go_image,
        runtime_image=options.runtime_image,
        platform=_host_platform(),
    )
    described = machine.describe(docker=options.docker, ko=ko)
    nonces = (f"{started} {n}" for n in itertools.count())
    bench = _Bench(options, workspace, say, begin, nonces, baseline_watches)
    for name in options.programs:
        _program(bench, name)
    if "docker" in options.peers:
        Docker(workspace).remove_leftovers()
    engine = next((b.detail["probe"]["engine_version"] for b in bench.breakdowns), None)
    described |= {"dagger_engine": engine, "loadavg_end": machine.loadavg()}
    return _results(bench, started, command, described)


def _program(bench: _Bench, name: str) -> None:
    """Every comparison and scenario of one program, then its sizes and where our time goes."""
    options, workspace, say = bench.options, bench.workspace, bench.say
    program = PROGRAMS[name]
    say(f"{name}: fetching {program.origin}")
    source = fetch(program, options.work)
    floor_bytes = floor(program, source, options.work / "out" / f"floor-{name}")
    bench.programs.append(ProgramInfo(name, program.origin, program.package, floor_bytes))
    sides: dict[str, Side] = {}  # the current sides: their images are measured
    for peer in options.peers:
        ours = Ours(workspace, publish=peer == "ko")
        baseline = options.baseline
        before = Ours(workspace, publish=peer == "ko", baseline=baseline) if baseline else None
        theirs = _peer(peer, workspace)
        sides |= {ours.name: ours, theirs.name: theirs}
        one_shot: list[Side] = [ours, *([before] if before else []), theirs]
        warmed: set[str] = set()
        for scenario in for_peer(peer, options.scenarios):
            watchers: list[OursWatch] = []
            if scenario is Scenario.WATCH:
                watchers.append(OursWatch(workspace, ours))
                if before is not None and bench.baseline_watches:
                    watchers.append(OursWatch(workspace, before))
            timed: list[Side | OursWatch] = (
                [*watchers, theirs] if scenario is Scenario.WATCH else [*one_shot]
            )
            if scenario is Scenario.COLD:
                warmed.clear()
            else:
                for side in timed:  # untimed: each one-shot side has built this tree
                    if not isinstance(side, OursWatch) and side.name not in warmed:
                        side.build(program, source)
                        warmed.add(side.name)
            with watching(watchers, program, source, say):
                _samples(bench, (name, program, source), peer, scenario, timed)
    say(f"{name}: sizes")
    bench.sizes += _sizes(program, floor_bytes, sides, bench.samples)
    if options.breakdown:
        say(f"{name}: where our time goes")
        ours = Ours(workspace, publish=False)
        measured = breakdown.measure(
            ours, program, source, next(bench.nonces), thorough=not options.quick
        )
        bench.breakdowns.append(measured)


def _samples(
    bench: _Bench,
    built: tuple[str, Program, Path],
    peer: str,
    scenario: Scenario,
    timed: list[Side | OursWatch],
) -> None:
    """The scenario's samples of each timed side, the order rotated between samples."""
    name, program, source = built
    options = bench.options
    count = options.cold_samples if scenario is Scenario.COLD else options.samples
    for index in range(count):
        for side in rotated(timed, index):
            nonce = next(bench.nonces)
            detail: dict[str, object]
            if isinstance(side, OursWatch):
                result = side.sample(program, nonce)
                detail = {**result.detail}
            else:
                result, detail = _one_shot(scenario, side, program, source, nonce, bench.workspace)
            bench.samples.append(
                Sample(name, peer, scenario, side.name, index, result.seconds, detail)
            )
            bench.say(
                f"{name} · {scenario} · {side.name} [{index + 1}/{count}]: "
                f"{result.seconds:.2f}s  ({time.perf_counter() - bench.begin:.0f}s in)"
            )


def _results(bench: _Bench, started: str, command: str, described: dict[str, Any]) -> Results:
    options, baseline = bench.options, bench.options.baseline
    return Results(
        started=started,
        seconds=time.perf_counter() - bench.begin,
        command=command,
        options={
            **asdict(options),
            "work": str(options.work),
            "scenarios": [str(s) for s in options.scenarios],
            "baseline": baseline.ref if baseline else None,
        },
        machine=described,
        programs=tuple(bench.programs),
        samples=tuple(bench.samples),
        sizes=tuple(bench.sizes),
        breakdowns=tuple(bench.breakdowns),
        baseline=(
            {
                "ref": baseline.ref,
                "commit": baseline.commit,
                "short": baseline.short,
                "side_prefix": baseline.label,
                "watch": bench.baseline_watches,
            }
            if baseline
            else None
        ),
    )


def _one_shot(
    scenario: Scenario,
    side: Side,
    program: Program,
    source: Path,
    nonce: str,
    workspace: Workspace,
) -> tuple[Run, dict[str, object]]:
    """One timed sample of a one-shot side, the tree (and caches) prepared for the scenario."""
    with prepared(scenario, side, program, source, nonce) as done:
        result = side.build(program, source)
    detail = {**result.detail, **({"cold_start": done} if done else {})}
    if isinstance(side, Docker):
        tarball = workspace.out(f"docker-{program.name}.tar")
        detail["tarball_uncompressed"] = docker_save_uncompressed(tarball)
    return result, detail
