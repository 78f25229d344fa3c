"""The bench itself: for each program, each comparison (ours against docker, ours against ko)
and each scenario, both sides alternately (ours first in even samples, the peer first in odd
ones), N samples each; then each side's image size against the floor, and where the time of
one of our runs goes."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import breakdown, machine
from bench.programs import PROGRAMS, Program, fetch, floor, go_env, install_ko
from bench.report import Breakdown, ProgramInfo, Results, Sample, Size
from bench.scenarios import Scenario, prepared
from bench.sides import Docker, Ko, Ours, Side, Workspace
from bench.sizes import docker_save_uncompressed, registry_image

PEERS = ("docker", "ko")
KO_VERSION = "v0.19.1"


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


def run(options: Options, command: str, say: Callable[[str], None]) -> Results:
    """Run the whole bench; `say` gets one line per sample."""
    begin = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
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
        sides: dict[str, Side] = {}
        for peer in options.peers:
            ours, theirs = Ours(workspace, publish=peer == "ko"), _peer(peer, workspace)
            sides |= {ours.name: ours, theirs.name: theirs}
            warm = False
            for scenario in options.scenarios:
                if scenario is not Scenario.COLD and not warm:
                    for side in (ours, theirs):  # untimed: each side has built this tree
                        side.build(program, source)
                warm = scenario is not Scenario.COLD
                count = options.cold_samples if scenario is Scenario.COLD else options.samples
                for index in range(count):
                    for side in (ours, theirs) if index % 2 == 0 else (theirs, ours):
                        with prepared(scenario, side, program, source, next(nonces)) as done:
                            result = side.build(program, source)
                        detail = {**result.detail, **({"cold_start": done} if done else {})}
                        if isinstance(side, Docker):
                            tarball = workspace.out(f"docker-{name}.tar")
                            detail["tarball_uncompressed"] = docker_save_uncompressed(tarball)
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
            ours = Ours(workspace, publish=False)
            breakdowns.append(
                breakdown.measure(ours, program, source, next(nonces), thorough=not options.quick)
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
        },
        machine=described,
        programs=tuple(programs),
        samples=tuple(samples),
        sizes=tuple(sizes),
        breakdowns=tuple(breakdowns),
    )
