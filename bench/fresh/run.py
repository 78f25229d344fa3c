"""The fresh-runner scenario (`python -m bench fresh`): a CI job on a hosted runner starts with
no local state, and the registry keeps what each side saved last time. One one-line change is
built by each side from nothing but the registry:

- `ours (cache)`: a new runner (the test bed's second engine and dockerd, on emptied state
  directories: `tests/testbed/up --fresh-runner`), then `python -m pipeline multistage
  --cache-from R --cache-to R`;
- `ours (cache, small Go image)`: the same, with a Go image a team picks for CI: Go on busybox
  (the test bed's stand-in for golang:*-alpine, TESTBED_GO_BUSYBOX_IMAGE), a quarter of the
  Debian one's bytes to pull;
- `ours (no cache)`: the same new engine, the same build without the cache flags;
- `docker`: the new runner's dockerd (no image, no build cache), `docker build --cache-from`
  the image it pushed last time (BuildKit's inline cache: the best docker 20.10 without buildx
  offers), and the push of the new one (what the next job reads);
- `ko`: an empty GOCACHE, restored from the tarball the last job saved (a CI cache step), the
  build, and the tarball saved again, all timed.

Every side pulls its bases from the test bed's registry. Then the artifact's size over
COMMITS successive one-line commits, each on fresh cache volumes restored from the last one."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.shared.programs import PROGRAMS, REPO, BenchError, Program, edited, fetch
from bench.shared.sides import LABEL, Ko, Ours, Workspace, timed
from bench.shared.tables import markdown_table

SMALL = "ours (cache, small Go image)"
SIDES = ("ours (cache)", SMALL, "ours (no cache)", "docker", "ko")
VERSUS = ("ours (cache)", SMALL)  # the table's ratio columns: each of these / the side
COMMITS = 10


@dataclass(frozen=True)
class Runner:
    """A new runner: the test bed's second engine and dockerd, started anew on emptied state
    directories (`tests/testbed/up --fresh-runner`)."""

    engine: str  # the runner host
    docker: str  # DOCKER_HOST

    @classmethod
    def start(cls) -> Runner:
        up = subprocess.run(
            [str(REPO / "tests" / "testbed" / "up"), "--fresh-runner"],
            capture_output=True,
            text=True,
            check=False,
        )
        said = dict(line.partition(": ")[::2] for line in up.stdout.splitlines() if ": " in line)
        if up.returncode != 0 or "runner host" not in said:
            raise BenchError(f"tests/testbed/up --fresh-runner failed: {up.stderr.strip()[-500:]}")
        return cls(said["runner host"], said["runner docker"])


def stop_runner() -> None:
    subprocess.run(
        [str(REPO / "tests" / "testbed" / "down"), "--fresh-runner"],
        capture_output=True,
        check=False,
    )


@dataclass(frozen=True)
class Fresh:
    """What each side needs to start from nothing but the registry."""

    workspace: Workspace
    program: Program
    source: Path

    @property
    def cache_ref(self) -> str:
        return f"{self.workspace.registry}/bench-fresh/{self.program.name}-cache:main"

    def ours(self, cache: bool, go_image: str | None = None) -> tuple[float, dict[str, Any]]:
        runner = Runner.start()  # not timed: a runner is there when the job starts
        workspace = replace(self.workspace, go_image=go_image or self.workspace.go_image)
        side = Ours(workspace, publish=False)
        report = side.file(self.program, "-fresh.json")
        command = side.command(self.program, self.source, report)
        if cache:
            command += ["--cache-from", self.cache_ref, "--cache-to", self.cache_ref]
        env = {**os.environ, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": runner.engine}
        seconds = timed(command, env=env)
        data = json.loads(report.read_text())
        return seconds, {
            "steps": {s["name"]: s["seconds"] for s in data["steps"]},
            "go_cache": data.get("go_cache"),
            "digest": data["images"][0]["digest"],
        }

    def docker(self) -> tuple[float, dict[str, Any]]:
        ws = self.workspace
        runner = Runner.start()  # its dockerd: no image, no build cache
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": runner.docker}
        ref = f"{ws.registry}/bench-fresh/{self.program.name}-docker:main"
        bases = [f"{ws.registry}/library/{i}" for i in (ws.go_image, ws.runtime_image)]
        build = [
            ws.docker, "build", "--quiet", "--file", str(REPO / "bench" / "Dockerfile"),
            "--build-arg", f"GO_IMAGE={bases[0]}", "--build-arg", f"RUNTIME_IMAGE={bases[1]}",
            "--build-arg", f"PACKAGE={self.program.package}", "--build-arg",
            "BUILDKIT_INLINE_CACHE=1", "--cache-from", ref, "--label", LABEL, "--tag", ref,
            str(self.source),
        ]  # fmt: skip
        start = time.perf_counter()
        built = timed(build, env=env)
        pushed = timed([ws.docker, "push", ref], env=env)
        return time.perf_counter() - start, {"steps": {"build": built, "push": pushed}}

    def ko(self) -> tuple[float, dict[str, Any]]:
        ko = Ko(self.workspace)
        saved = self.workspace.root / "cache" / f"ko-fresh-{self.program.name}.tar.gz"
        ko.empty_caches()
        start = time.perf_counter()
        ko.gocache.mkdir(parents=True, exist_ok=True)
        if saved.exists():
            with tarfile.open(saved) as tar:
                tar.extractall(ko.gocache, filter="data")
        restored = time.perf_counter() - start
        built = ko.build(self.program, self.source).seconds
        mark = time.perf_counter()
        with tarfile.open(saved.with_suffix(".tmp"), "w:gz", compresslevel=1) as tar:
            tar.add(ko.gocache, arcname=".")
        saved.with_suffix(".tmp").rename(saved)
        seconds = time.perf_counter() - start
        steps = {"restore": restored, "build": built, "save": time.perf_counter() - mark}
        return seconds, {"steps": steps, "saved_bytes": saved.stat().st_size}

    def sample(self, side: str) -> tuple[float, dict[str, Any]]:
        if side == "docker":
            return self.docker()
        if side == "ko":
            return self.ko()
        if side == SMALL:
            small = os.environ.get("TESTBED_GO_BUSYBOX_IMAGE")
            if not small:
                raise BenchError(f"{side}: no TESTBED_GO_BUSYBOX_IMAGE: run in the test bed")
            return self.ours(cache=True, go_image=small)
        return self.ours(cache=side == "ours (cache)")


def artifact_sizes(fresh: Fresh, commits: int, log: Callable[[str], None]) -> list[int]:
    """The cache artifact's size after each of `commits` successive one-line commits, each
    on fresh cache volumes (a new repository per commit) restored from the commit before."""
    side = Ours(fresh.workspace, publish=False)
    base = f"{fresh.workspace.registry}/bench-fresh/{fresh.program.name}-commits-{time.time_ns():x}"
    sizes: list[int] = []
    previous: str | None = None
    target = fresh.source / fresh.program.source_file
    original = target.read_bytes()
    try:
        for commit in range(1, commits + 1):
            target.write_bytes(original + f'\nvar _ = "bench commit {commit}"\n'.encode())
            ref = f"{base}-{commit}:main"
            report = side.file(fresh.program, f"-commit{commit}.json")
            command = [*side.command(fresh.program, fresh.source, report), "--cache-to", ref]
            if previous:
                command += ["--cache-from", previous]
            timed(command)
            cache = json.loads(report.read_text())["go_cache"]
            if cache.get("saved_size") is None:
                raise BenchError(f"commit {commit}: nothing saved: {cache.get('warnings')}")
            sizes.append(int(cache["saved_size"]))
            log(f"{fresh.program.name}: commit {commit}: artifact {sizes[-1]} bytes")
            previous = ref
    finally:
        target.write_bytes(original)
    return sizes


def run(
    workspace: Workspace,
    programs: tuple[str, ...],
    samples: int,
    commits: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every side's fresh-runner build of a one-line change, `samples` times (after one
    untimed round that leaves each side's cache in the registry), then the artifact sizes."""
    results: dict[str, Any] = {"programs": {}, "samples": samples, "commits": commits}
    try:
        for name in programs:
            program = PROGRAMS[name]
            fresh = Fresh(workspace, program, fetch(program, workspace.root))
            timings: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
            for round_ in range(samples + 1):
                with edited(fresh.source / program.source_file, f"fresh-{round_}-{time.time_ns()}"):
                    for side in SIDES:
                        seconds, detail = fresh.sample(side)
                        log(
                            f"{name}: {side}: {seconds:.2f}s" + (" (priming)" if not round_ else "")
                        )
                        if round_:
                            timings[side].append({"seconds": seconds, **detail})
            sizes = artifact_sizes(fresh, commits, log)
            results["programs"][name] = {"timings": timings, "artifact_sizes": sizes}
    finally:
        stop_runner()
    return results


def median(samples: list[dict[str, Any]]) -> float:
    return float(statistics.median(float(s["seconds"]) for s in samples))


def table(results: dict[str, Any]) -> list[list[str]]:
    """Rows: program, side, median seconds, n, then each of VERSUS's median / the side's
    ("-" where that side was not run)."""
    rows = []
    for name, data in results["programs"].items():
        timings = data["timings"]
        medians = {side: median(timings[side]) for side in SIDES if timings.get(side)}
        for side, seconds in medians.items():
            ratios = [
                f"{medians[ours] / seconds:.2f}x" if ours in medians else "-" for ours in VERSUS
            ]
            rows.append([name, side, f"{seconds:.2f}s", str(len(timings[side])), *ratios])
    return rows


def markdown(results: dict[str, Any], command: str, machine: str) -> str:
    """The scenario's tables as Markdown."""
    sizes = []
    for name, data in results["programs"].items():
        measured = data["artifact_sizes"]
        listed = ", ".join(f"{s / 1e6:.2f}" for s in measured)
        sizes.append([name, listed, f"{measured[-1] / measured[0]:.3f}x"])
    header = ["program", "side", "median", "n", *(f"{ours} / side" for ours in VERSUS)]
    lines = [
        "# Fresh runner: a one-line change built from nothing but the registry",
        "",
        f"Made with `{command}` on {results['date']}. Machine: {machine}.",
        "",
        (__doc__ or "").split("\n\n", 1)[0].replace("\n", " "),
        "",
        "## Wall time (median; ours / side: below 1, ours is faster)",
        "",
        markdown_table(header, table(results)),
        "",
        f"## The cache artifact over {results['commits']} successive one-line commits",
        "",
        markdown_table(["program", "sizes (MB), commit 1 → last", "last / first"], sizes),
    ]
    return "\n".join(lines) + "\n"
