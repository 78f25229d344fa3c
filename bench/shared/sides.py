"""The sides of each comparison: how each builds a program (one timed command), how its build
caches are emptied for a cold start (base images stay), and where its image ends up.

- `ours (export)`: `python -m pipeline multistage ... --output TAR`, one-shot, as a user runs it;
  its peer is `docker`: `docker build` of bench/Dockerfile (BuildKit, cache mounts for the Go
  module and build caches) then `docker save` to a tarball.
- `ours (publish)`: the same build pushed with `--publish`; its peer is `ko`: `ko build --bare`
  pushed to the same registry onto the same base.
- `ours (watch)`: in the watch scenario only, against `docker`: one long-lived
  `python -m pipeline multistage --watch` with the flags of `ours (export)`, timed from an
  edit to its rebuilt result (bench/speed/watch.py).
- `ours@<sha> (export|publish|watch)`: with `--baseline REF`, the same sides run with
  pipeline/ as committed at REF (bench/shared/baseline.py): a third side in every comparison.

Every side runs with the same go (1.26.8), the same flags (CGO_ENABLED=0 -trimpath
-ldflags "-s -w") and the same bases (golang:1.26, busybox:1.35).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.shared.baseline import Baseline
from bench.shared.programs import REPO, BenchError, Program, go_env

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"
LABEL = "io.pipeline.bench=1"  # on docker's images, so that the bench removes only its own
COMMAND_TIMEOUT = 900.0


@dataclass(frozen=True)
class Workspace:
    """Where the bench keeps its files, and what every side builds with."""

    root: Path  # bench/.work: git-ignored
    registry: str
    docker: str
    ko: Path
    go_image: str
    runtime_image: str
    platform: str  # linux/amd64: the engine's and the host's

    def out(self, name: str) -> Path:
        path = self.root / "out" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def runtime_ref(self) -> str:
        """The runtime base as the registry names it (what ko pulls)."""
        first, slash, _ = self.runtime_image.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            return self.runtime_image  # it names its registry
        name = self.runtime_image if slash else f"library/{self.runtime_image}"
        return f"{self.registry}/{name}"


@dataclass(frozen=True)
class Run:
    """One timed build: its wall time and what the side reported."""

    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


class Side(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def workspace(self) -> Workspace: ...

    def empty_caches(self) -> dict[str, Any]:
        """Empty this side's build caches, keep its base images; say what was done."""
        ...

    def build(self, program: Program, source: Path) -> Run:
        """Build the program once, timed."""
        ...

    def image_ref(self, program: Program) -> str:
        """The reference of the side's image of the program."""
        ...


def timed(command: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None) -> float:
    """Run a command; its wall time. Failure ends the bench: a failed sample is no sample."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()[-15:]
        raise BenchError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n" + "\n".join(output)
        )
    return seconds


def engine_call(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`python -m bench.shared.engine ARGS`: the bench's own Dagger calls, in a fresh interpreter
    (with `env`, if given, as its environment: another engine's address)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.shared.engine", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT,
    )
    if done.returncode != 0:
        raise BenchError(f"bench.shared.engine {args[0]} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def report_detail(data: dict[str, Any]) -> dict[str, Any]:
    """What a sample keeps of the pipeline's --json report: steps, cache state, the image."""
    image = data["images"][0]
    size = image.get("size", {})
    return {
        "steps": {s["name"]: s["seconds"] for s in data.get("steps", [])},
        "cache": data.get("cache"),
        "digest": image.get("digest"),
        "uncompressed": size.get("uncompressed"),
        "compressed": size.get("compressed"),
        "layers": image.get("layers"),
    }


@dataclass(frozen=True)
class Ours:
    """`python -m pipeline multistage`, one-shot; exporting a tarball, or publishing. With a
    baseline, the pipeline as committed there (run from its extracted copy)."""

    workspace: Workspace
    publish: bool
    baseline: Baseline | None = None

    @property
    def label(self) -> str:
        """`ours`, or `ours@<sha>` for the baseline."""
        return self.baseline.label if self.baseline else "ours"

    @property
    def name(self) -> str:
        return f"{self.label} ({'publish' if self.publish else 'export'})"

    @property
    def cwd(self) -> Path:
        """Where `python -m pipeline` runs: the directory whose pipeline/ it imports."""
        return self.baseline.directory if self.baseline else REPO

    def file(self, program: Program, suffix: str) -> Path:
        """A file of this side's in the work directory: ours-NAME.tar, ours-SHA-NAME.json..."""
        return self.workspace.out(f"{self.label.replace('@', '-')}-{program.name}{suffix}")

    def empty_caches(self) -> dict[str, Any]:
        pruned = engine_call("prune")
        bases = engine_call("bases", self.workspace.go_image, self.workspace.runtime_image)
        return {
            "prune_seconds": pruned["seconds"],
            "prune_tries": pruned["tries"],
            # Not 0: another session held part of the cache; this sample was not fully cold.
            "cache_bytes_left": pruned["bytes_left"],
            "bases_seconds": bases["seconds"],
        }

    def image_ref(self, program: Program) -> str:
        repository = f"bench-{self.label.replace('@', '-')}"
        return f"{self.workspace.registry}/{repository}/{program.name}:latest"

    def command(
        self,
        program: Program,
        source: Path,
        report: Path,
        *,
        test: bool = False,
        run: bool = False,
        output: Path | None = None,
        watch: bool = False,
    ) -> list[str]:
        """The pipeline's command line; the timed samples neither test nor run the image."""
        ws = self.workspace
        where = (
            ["--no-output", "--publish", self.image_ref(program)]
            if self.publish
            else ["--output", str(output or self.file(program, ".tar"))]
        )
        return [
            sys.executable,
            "-m",
            "pipeline",
            "multistage",
            *(["--watch"] if watch else []),
            "--test" if test else "--no-test",
            "--run" if run else "--no-run",
            "--go-image",
            ws.go_image,
            "--runtime-image",
            ws.runtime_image,
            "--source",
            str(source),
            "--package",
            program.package,
            "--name",
            program.name,
            *where,
            "--json",
            str(report),
        ]

    def build(self, program: Program, source: Path) -> Run:
        report = self.file(program, ".json")
        report.unlink(missing_ok=True)
        seconds = timed(self.command(program, source, report), cwd=self.cwd)
        return Run(seconds, report_detail(json.loads(report.read_text())))


@dataclass(frozen=True)
class Docker:
    """`docker build` (BuildKit) of bench/Dockerfile, then `docker save` to a tarball."""

    workspace: Workspace
    name: str = "docker"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_BUILDKIT": "1"}

    def empty_caches(self) -> dict[str, Any]:
        # The build cache only (cache mounts included); images, the bases among them, stay.
        seconds = timed([self.workspace.docker, "builder", "prune", "-af"], env=self._env())
        return {"prune_seconds": seconds}

    def image_ref(self, program: Program) -> str:
        return f"{self.workspace.registry}/bench-docker/{program.name}:latest"

    def build(self, program: Program, source: Path) -> Run:
        ws, ref = self.workspace, self.image_ref(program)
        tarball = ws.out(f"docker-{program.name}.tar")
        env = self._env()
        build = [
            ws.docker,
            "build",
            "--quiet",
            "--file",
            str(DOCKERFILE),
            "--build-arg",
            f"GO_IMAGE={ws.go_image}",
            "--build-arg",
            f"RUNTIME_IMAGE={ws.runtime_image}",
            "--build-arg",
            f"PACKAGE={program.package}",
            "--label",
            LABEL,
            "--tag",
            ref,
            str(source),
        ]
        start = time.perf_counter()
        built = timed(build, env=env)
        saved = timed([ws.docker, "save", "--output", str(tarball), ref], env=env)
        seconds = time.perf_counter() - start
        return Run(seconds, {"steps": {"build": built, "save": saved}})

    def push(self, program: Program) -> None:
        """Push the last image to the registry, to be measured as the others are (untimed)."""
        timed([self.workspace.docker, "push", self.image_ref(program)], env=self._env())

    def remove_leftovers(self) -> None:
        """The bench's images that later builds untagged (only those: by label)."""
        timed(
            [self.workspace.docker, "image", "prune", "--force", "--filter", f"label={LABEL}"],
            env=self._env(),
        )


@dataclass(frozen=True)
class Ko:
    """`ko build --bare` onto the same base, pushed to the test bed's registry."""

    workspace: Workspace
    name: str = "ko"

    @property
    def gocache(self) -> Path:
        return self.workspace.root / "cache" / "ko-go-build"

    def empty_caches(self) -> dict[str, Any]:
        # ko builds with the host's go: its build cache is a directory of its own here.
        shutil.rmtree(self.gocache, ignore_errors=True)
        return {}

    def image_ref(self, program: Program) -> str:
        return f"{self.workspace.registry}/bench-ko/{program.name}:latest"

    def _config(self, program: Program) -> Path:
        """A .ko.yaml with our flags for the program's main package."""
        directory = self.workspace.root / "ko" / program.name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ".ko.yaml").write_text(
            "builds:\n"
            f"- id: {program.name}\n"
            f"  main: {program.package}\n"
            '  flags: ["-trimpath"]\n'
            '  ldflags: ["-s", "-w"]\n'
            '  env: ["CGO_ENABLED=0"]\n'
        )
        return directory

    def build(self, program: Program, source: Path) -> Run:
        ws = self.workspace
        self.gocache.mkdir(parents=True, exist_ok=True)
        env = go_env(
            {
                "GOFLAGS": "-buildvcs=false",  # as in the images' builds: no .git there
                "GOCACHE": str(self.gocache),
                "KO_CONFIG_PATH": str(self._config(program)),
                "KO_DOCKER_REPO": self.image_ref(program).rpartition(":")[0],
                "KO_DEFAULTBASEIMAGE": ws.runtime_ref,
                # The copy lives in this repository's tree; it is not a repository of its own.
                "GIT_CEILING_DIRECTORIES": str(source.parent),
            }
        )
        command = [
            str(ws.ko),
            "build",
            "--bare",
            "--insecure-registry",
            "--sbom=none",
            f"--platform={ws.platform}",
            program.package,
        ]
        return Run(timed(command, cwd=source, env=env))
