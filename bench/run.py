"""The bench itself: for each program, each comparison (ours against docker, ours against ko)
and each scenario, every side of the comparison (ours, the peer, and with --baseline the
baseline's ours) N samples each, alternately: sample i runs the sides in an order rotated by i,
so that none always goes first. Then each side's image size against the floor, and where the
time of one of our runs goes.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bench import baseline as baselines
from bench import breakdown, machine
from bench.baseline import Baseline
from bench.programs import PROGRAMS, Program, fetch, floor, go_env, install_ko
from bench.report import Breakdown, ProgramInfo, Results, Sample, Size
from bench.scenarios import Scenario, prepared
from bench.sides import Docker, Ko, Ours, Run, Side, Workspace
from bench.sizes import docker_save_uncompressed, registry_image

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


def run(options: Options, command: str, say: Callable[[str], None]) -> Results:
    """Run the whole bench; `say` gets one line per sample."""
    begin = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    baseline = options.baseline
    if baseline is not None:
        say(f"baseline: pipeline/ at {baseline.ref} ({baseline.short}) into {baseline.directory}")
        baselines.extract(baseline)
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
    samples: list[Sample] = []
    programs: list[ProgramInfo] = []
    sizes: list[Size] = []
    breakdowns: list[Breakdown] = []

    for name in options.programs:
        program = PROGRAMS[name]
        say(f"{name}: fetching {program.origin}")
        source = fetch(program, options.work)
        floor_bytes = floor(program, source, options.work / "out" / f"floor-{name}")
        programs.append(ProgramInfo(name, program.origin, program.package, floor_bytes))
        sides: dict[str, Side] = {}  # the current sides: their images are measured
        for peer in options.peers:
            ours = Ours(workspace, publish=peer == "ko")
            before = Ours(workspace, publish=peer == "ko", baseline=baseline) if baseline else None
            theirs = _peer(peer, workspace)
            sides |= {ours.name: ours, theirs.name: theirs}
            one_shot: list[Side] = [ours, *([before] if before else []), theirs]
            warmed: set[str] = set()
            for scenario in options.scenarios:
                if scenario is Scenario.COLD:
                    warmed.clear()
                else:
                    for side in one_shot:  # untimed: each side has built this tree
                        if side.name not in warmed:
                            side.build(program, source)
                            warmed.add(side.name)
                count = options.cold_samples if scenario is Scenario.COLD else options.samples
                for index in range(count):
                    for side in rotated(one_shot, index):
                        result, detail = _one_shot(
                            scenario, side, program, source, next(nonces), workspace
                        )
                        samples.append(
                            Sample(name, peer, scenario, side.name, index, result.seconds, detail)
                        )
                        say(
                            f"{name} · {scenario} · {side.name} [{index + 1}/{count}]: "
                            f"{result.seconds:.2f}s  ({time.perf_counter() - begin:.0f}s in)"
                        )
        say(f"{name}: sizes")
        sizes += _sizes(program, floor_bytes, sides, samples)
        if options.breakdown:
            say(f"{name}: where our time goes")
            breakdowns.append(
                breakdown.measure(
                    Ours(workspace, publish=False),
                    program,
                    source,
                    next(nonces),
                    thorough=not options.quick,
                )
            )

    if "docker" in options.peers:
        Docker(workspace).remove_leftovers()
    engine = next((b.detail["probe"]["engine_version"] for b in breakdowns), None)
    described |= {"dagger_engine": engine, "loadavg_end": machine.loadavg()}
    return Results(
        started=started,
        seconds=time.perf_counter() - begin,
        command=command,
        options={
            **asdict(options),
            "work": str(options.work),
            "scenarios": [str(s) for s in options.scenarios],
            "baseline": baseline.ref if baseline else None,
        },
        machine=described,
        programs=tuple(programs),
        samples=tuple(samples),
        sizes=tuple(sizes),
        breakdowns=tuple(breakdowns),
        baseline=(
            {
                "ref": baseline.ref,
                "commit": baseline.commit,
                "short": baseline.short,
                "side_prefix": baseline.label,
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
