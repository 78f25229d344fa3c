"""Three services, one-line change to a shared package: examples/service with a third main
package (cmd/migrate), each main importing internal/version, and a line added there before
each sample, so all three binaries are built again.

- `ours (export)`: one `python -m pipeline multistage` run of the copy's pipeline.toml (three
  [images.NAME] tables): one session, the three builds at once, three OCI tarballs;
- `docker`: three `docker build`s of bench/Dockerfile, one per main package, each then
  `docker save`d (Debian's docker has no `buildx bake`), as ours (export)'s peer;
- `ours (publish)`: the same run pushing the three images; its peer is
- `ko`: one `ko build -B` of the three import paths, pushed, each with its SBOM (ko's
  default, `--sbom=spdx`), as ours pushes one.

Same go, flags (CGO_ENABLED=0 -trimpath -s -w) and bases on every side. Each side builds once,
untimed, before the samples (its caches warm, its bases pulled); then the sides take turns
for each sample, each on an edit it has never built."""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.shared.programs import REPO, edited, go_env
from bench.shared.sides import DOCKERFILE, LABEL, Workspace, timed
from bench.shared.tables import scenario_markdown, seconds_cell

SERVICES = ("api", "worker", "migrate")
SHARED_FILE = "internal/version/version.go"
SIDES = ("ours (export)", "docker", "ours (publish)", "ko")
PEER_OF = {"docker": "ours (export)", "ko": "ours (publish)"}
GOALS = {"docker": 1.0, "ko": 1.5}  # ours at most this many times the peer's median


@dataclass(frozen=True)
class Sample:
    side: str
    seconds: float


def prepare(work: Path) -> Path:
    """A copy of examples/service with cmd/migrate and a pipeline.toml of three images, plain
    (no files, no CMD: what the peers build too)."""
    source = work / "services"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(REPO / "examples" / "service", source)
    migrate = source / "cmd" / "migrate"
    migrate.mkdir()
    worker = (source / "cmd" / "worker" / "main.go").read_text()
    (migrate / "main.go").write_text(worker.replace('"worker"', '"migrate"'))
    (source / "pipeline.toml").write_text(
        "".join(f'[images.{s}]\npackage = "./cmd/{s}"\n' for s in SERVICES)
    )
    return source


def _ours(ws: Workspace, source: Path, publish: bool) -> list[str]:
    where = (
        ["--no-output", "--publish", f"{ws.registry}/bench-services/{{{{.Name}}}}:latest"]
        if publish
        else ["--output", str(ws.out("services/ours-{{.Name}}.tar"))]
    )
    return [
        sys.executable, "-m", "pipeline", "multistage", "--source", str(source), "--no-test",
        "--no-run", "--go-image", ws.go_image, "--runtime-image", ws.runtime_image, "--quiet",
        *where,
    ]  # fmt: skip


def _docker(ws: Workspace, source: Path) -> float:
    env = {**go_env(), "DOCKER_BUILDKIT": "1"}
    start = time.perf_counter()
    for service in SERVICES:
        ref = f"{ws.registry}/bench-services-docker/{service}:latest"
        timed(
            [
                ws.docker, "build", "--quiet", "--file", str(DOCKERFILE),
                "--build-arg", f"GO_IMAGE={ws.go_image}",
                "--build-arg", f"RUNTIME_IMAGE={ws.runtime_image}",
                "--build-arg", f"PACKAGE=./cmd/{service}", "--label", LABEL, "--tag", ref,
                str(source),
            ],
            env=env,
        )  # fmt: skip
        timed([ws.docker, "save", "--output", str(ws.out(f"services/docker-{service}.tar")), ref])
    return time.perf_counter() - start


def _ko(ws: Workspace, source: Path) -> float:
    config = ws.root / "ko-services"
    config.mkdir(parents=True, exist_ok=True)
    (config / ".ko.yaml").write_text(
        "builds:\n"
        + "".join(
            f'- id: {s}\n  main: ./cmd/{s}\n  flags: ["-trimpath"]\n'
            '  ldflags: ["-s", "-w"]\n  env: ["CGO_ENABLED=0"]\n'
            for s in SERVICES
        )
    )
    cache = ws.root / "cache" / "ko-services-go-build"
    cache.mkdir(parents=True, exist_ok=True)
    env = go_env(
        {
            "GOFLAGS": "-buildvcs=false",
            "GOCACHE": str(cache),
            "KO_CONFIG_PATH": str(config),
            "KO_DOCKER_REPO": f"{ws.registry}/bench-services-ko",
            "KO_DEFAULTBASEIMAGE": ws.runtime_ref,
            "GIT_CEILING_DIRECTORIES": str(source.parent),
        }
    )
    command = [
        str(ws.ko), "build", "-B", "--insecure-registry", "--sbom=spdx",
        f"--platform={ws.platform}", *(f"./cmd/{s}" for s in SERVICES),
    ]  # fmt: skip
    return timed(command, cwd=source, env=env)


def build(side: str, ws: Workspace, source: Path) -> float:
    """One build of the three services by `side`, timed."""
    if side == "docker":
        return _docker(ws, source)
    if side == "ko":
        return _ko(ws, source)
    return timed(_ours(ws, source, publish=side == "ours (publish)"))


def run(ws: Workspace, samples: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Warm every side once, then `samples` rounds of the one-line change, sides in turn."""
    source = prepare(ws.root)
    shared = source / SHARED_FILE
    for side in SIDES:
        with edited(shared, f"warm {side}"):
            say(f"services: warming {side}: {build(side, ws, source):.2f}s")
    found: list[Sample] = []
    for number in range(samples):
        order = SIDES[number % len(SIDES) :] + SIDES[: number % len(SIDES)]
        for side in order:
            with edited(shared, f"sample {number} {side} {time.time_ns()}"):
                seconds = build(side, ws, source)
            found.append(Sample(side, seconds))
            say(f"services: {side} sample {number + 1}/{samples}: {seconds:.2f}s")
    return {"samples": [asdict(s) for s in found], **summary(found)}


def summary(found: list[Sample]) -> dict[str, Any]:
    """Each side's median, and ours against each peer as a ratio, with its goal."""
    medians = {
        side: statistics.median(s.seconds for s in found if s.side == side)
        for side in SIDES
        if any(s.side == side for s in found)
    }
    ratios = {
        peer: {
            "ours": ours,
            "ratio": medians[ours] / medians[peer],
            "goal": GOALS[peer],
            "met": medians[ours] / medians[peer] <= GOALS[peer],
        }
        for peer, ours in PEER_OF.items()
        if peer in medians and ours in medians
    }
    return {"medians": medians, "ratios": ratios}


def cells(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["peer", "side", "ours median", "peer median", "ours/peer", "goal"]
    rows = [
        [
            peer,
            r["ours"],
            seconds_cell(results["medians"][r["ours"]]),
            seconds_cell(results["medians"][peer]),
            f"{r['ratio']:.2f}x",
            f"≤ {r['goal']:.1f}x ({'met' if r['met'] else 'not met'})",
        ]
        for peer, r in results["ratios"].items()
    ]
    return header, rows


def markdown(results: dict[str, Any], command: str, machine: str) -> str:
    return scenario_markdown(
        "Three services, one-line change to a shared package",
        cells(results),
        results,
        command,
        machine,
    )
