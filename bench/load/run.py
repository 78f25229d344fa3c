"""The load run (`python -m bench load`): N runs of `python -m pipeline`, each its own process
as N CI jobs would be, against one engine reached over mutual TLS (the runner host the
options give, e.g. the test bed's TLS terminator at 127.0.0.1:8443).

The runs (MIX, taken in order and again from its start past its end; `--quick`: hello world's
only) build hello world (go-src/) and age (bench/shared/programs.py) with `multistage` and
`builder`, some for two platforms (multistage only: builder is native-only; on scratch, since the
test bed's busybox has no linux/arm64), one pushed with `--publish` to the registry with a login.
Each run is `python -m pipeline VARIANT --quiet --test ...` (the tests on, as CI runs them;
stderr then holds only errors) with its own --name, --output and --json, and its own tag on
the registry; age runs with --no-run (without arguments it prints its usage and exits 1).
Every run gets the same environment: the engine's address and the dagger CLI, git kept out of
the sources' copies (GIT_CEILING_DIRECTORIES: no revision label that a commit elsewhere could
change), no inherited PIPELINE_* variable but PIPELINE_REGISTRY_MIRROR (how the engine pulls,
not what a run builds: without it a run on an engine that pulls docker.io through a mirror reads
its bases' layers from docker.io); the --publish run alone gets the password, in
PIPELINE_REGISTRY_PASSWORD.

The passes, each into a directory of its own under WORK/load/out/ (the tarballs deleted after
each pass: a builder run writes its 700 MB build image too):

1. warm-up, untimed: the N runs one after another, so that the engine's cache holds every
   run's tests, build and layers before either timed pass (a failure here ends the load run);
2. sequential: the N runs one after another, timed: each run's image built alone;
3. concurrent: the N runs started at once, timed from the first start to the last exit;
4. fault (unless --no-faults): the N runs at once again, with one more client beside them,
   started first: hello world with a generated 20,000-case switch and a fresh nonce (so that
   its go build runs, and takes seconds), multistage for two platforms, --no-test, its
   progress lines on stderr; it is SIGKILLed KILL_DELAY seconds after its `build ...` line.
   Where the engine runs on this machine, its `go build ... -o /out/load-victim` processes
   are counted at the kill (the evidence that it was compiling), and watched until they are
   gone (cancelled or finished) or LEFTOVER_WAIT seconds have passed; the victim's process
   group (its dagger CLI child) is watched as long for processes left behind.

/proc/stat is sampled during every pass (bench/shared/cpu.py). The report, the statistics and the
checks are bench/load/report.py's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.load.report import LoadResults, Pass, Planned, RunSample, Victim
from bench.shared import machine
from bench.shared.cpu import Sampler
from bench.shared.programs import PROGRAMS, REPO, BenchError, fetch
from bench.shared.sides import engine_call, report_detail

TWO_PLATFORMS = ("linux/amd64", "linux/arm64")
MULTI_PLATFORM_BASE = "scratch"  # the test bed's busybox:1.35 has linux/amd64 only
PASSWORD_ENV = "PIPELINE_REGISTRY_PASSWORD"
MIRROR_ENV = "PIPELINE_REGISTRY_MIRROR"  # the engine's mirrors: every run reads its bases there
RUN_TIMEOUT = 1800.0  # age's tests take minutes with a cold cache, more with 8 at once
KILL_DELAY = 2.0  # seconds from the victim's `build ...` line to its SIGKILL: into go build
LEFTOVER_WAIT = 10.0  # how long the victim's process group may take to empty
BUILD_WATCH = 120.0  # how long its go build on the engine is watched after the kill
VICTIM_CASES = 20_000  # hello world + a switch this long: a go build of seconds, not 0.3 s
BUILD_STARTED = "pipeline: build ..."  # the pipeline's plain progress lines (in a pipe)
BUILD_DONE = "pipeline: build done"
ERROR_LINES = 8
IDLE_SECONDS = 3.0
ENGINE_WAIT = 300.0  # how long a pass waits for an engine that is not answering (restarted)


@dataclass(frozen=True)
class Recipe:
    program: str
    variant: str
    platforms: tuple[str, ...] = ()
    publish: bool = False


MIX: tuple[Recipe, ...] = (
    Recipe("helloworld", "multistage"),
    Recipe("age", "multistage"),
    Recipe("helloworld", "builder"),
    Recipe("age", "builder"),
    Recipe("helloworld", "multistage", TWO_PLATFORMS),
    Recipe("age", "multistage", TWO_PLATFORMS),
    Recipe("helloworld", "multistage", publish=True),
    Recipe("age", "multistage"),  # two jobs building the same program the same way at once
)
DEFAULT_RUNS = 8
QUICK_RUNS = 4
QUICK_PROGRAMS = ("helloworld",)

WARM = (
    "one untimed pass of the same runs, one after another, came first: after it the engine's "
    "cache held every run's go vet and go test, go build, image layers and base images. Then "
    "the sequential pass, then the concurrent one, with the same inputs: neither started "
    "colder than the other (the go build warm column: the runs whose go build came from the "
    "cache)."
)


def plan(runs: int, programs: tuple[str, ...]) -> tuple[Planned, ...]:
    """The first `runs` of MIX's recipes for these programs, in order, again from the start
    past its end; each run named after its index and program."""
    mix = [r for r in MIX if r.program in programs]
    if not mix:
        raise BenchError(f"no runs for programs {', '.join(programs) or '(none)'}")
    return tuple(
        Planned(
            index=i + 1,
            name=f"load{i + 1}-{recipe.program}",
            program=recipe.program,
            variant=recipe.variant,
            platforms=recipe.platforms,
            publish=recipe.publish,
        )
        for i, recipe in ((i, mix[i % len(mix)]) for i in range(runs))
    )


@dataclass(frozen=True)
class Reach:
    """How every run reaches the engine, and the registry the --publish run pushes to."""

    runner_host: str  # _EXPERIMENTAL_DAGGER_RUNNER_HOST: tls://HOST:PORT?ca_path=...
    cli: str  # _EXPERIMENTAL_DAGGER_CLI_BIN
    registry: str
    username: str
    password: str = field(repr=False)
    ca: Path

    @property
    def address(self) -> str:
        """The engine's address without its query: `tls://127.0.0.1:8443 (mutual TLS)`."""
        url = urlsplit(self.runner_host)
        mutual = url.scheme == "tls" and "cert_path" in parse_qs(url.query)
        return f"{url.scheme}://{url.netloc}" + (" (mutual TLS)" if mutual else "")


@dataclass(frozen=True)
class LoadOptions:
    """A load run, resolved once from the command line."""

    runs: int
    programs: tuple[str, ...]
    faults: bool
    work: Path
    go_image: str
    runtime_image: str
    reach: Reach
    quick: bool = False

    def described(self) -> dict[str, Any]:
        """The options as the JSON keeps them: no password."""
        return {
            "runs": self.runs,
            "programs": list(self.programs),
            "faults": self.faults,
            "quick": self.quick,
            "work": str(self.work),
            "go_image": self.go_image,
            "runtime_image": self.runtime_image,
            "engine": self.reach.address,
            "registry": self.reach.registry,
            "registry_username": self.reach.username,
            "registry_ca": str(self.reach.ca),
        }


def description(options: LoadOptions, runs: tuple[Planned, ...]) -> str:
    """What ran, in a paragraph for the Markdown."""
    recipes = "; ".join(f"{r.index}. {r.recipe}" for r in runs)
    return (
        f"Runs: {recipes}. Each is `python -m pipeline VARIANT --quiet --test` (tests on, as "
        "CI runs them) as a process of its own, with its own `--name`, `--output` and "
        f"`--json`, `--go-image {options.go_image}`, `--runtime-image "
        f"{options.runtime_image}` ({MULTI_PLATFORM_BASE} for the two-platform runs: "
        f"{' and '.join(TWO_PLATFORMS)})"
        + (", age with `--no-run`" if "age" in options.programs else "")
        + "; every run reaches the engine "
        f"at {options.reach.address} through `_EXPERIMENTAL_DAGGER_RUNNER_HOST`. The "
        f"`--publish` run pushes to {options.reach.registry}/load/PROGRAM:NAME-PASS with "
        "`--registry-username`, `--registry-ca` and the password in "
        f"`{PASSWORD_ENV}`. Sequential: one after another; concurrent: all started at once; "
        "wall = from the first start to the last exit; throughput = the sequential runs' "
        "summed wall times / the concurrent wall."
    )


def environment(reach: Reach, sources: Path) -> dict[str, str]:
    """Every run's environment: this one without PIPELINE_* variables (but the engine's
    mirrors) and passwords, with the engine's address, the dagger CLI, and git kept out of
    the copies under `sources`."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("PIPELINE_") or k == MIRROR_ENV) and k != "TESTBED_AUTH_PASSWORD"
    }
    return kept | {
        "_EXPERIMENTAL_DAGGER_RUNNER_HOST": reach.runner_host,
        "_EXPERIMENTAL_DAGGER_CLI_BIN": reach.cli,
        "GIT_CEILING_DIRECTORIES": str(sources),
    }


class Launcher:
    """Starts the runs of one pass: their command lines and environment, each in its own
    process, timed from its start to its exit."""

    def __init__(self, options: LoadOptions, sources: dict[str, Path], out: Path) -> None:
        self.options = options
        self.sources = sources
        self.out = out
        self.env = environment(options.reach, next(iter(sources.values())).parent)

    def command(self, run: Planned) -> list[str]:
        program = PROGRAMS[run.program]
        o = self.options
        base = MULTI_PLATFORM_BASE if len(run.platforms) > 1 else o.runtime_image
        publish = (
            [
                "--publish",
                f"{o.reach.registry}/load/{run.program}:{run.name}-{self.out.name}",
                "--registry-username",
                o.reach.username,
                "--registry-ca",
                str(o.reach.ca),
            ]
            if run.publish
            else []
        )
        return [
            sys.executable,
            "-m",
            "pipeline",
            run.variant,
            "--quiet",
            "--test",
            "--run" if program.runs_bare else "--no-run",
            "--source",
            str(self.sources[run.program]),
            "--package",
            program.package,
            "--name",
            run.name,
            "--go-image",
            o.go_image,
            "--runtime-image",
            base,
            *[word for p in run.platforms for word in ("--platform", p)],
            "--output",
            str(self.out / f"{run.name}.tar"),
            "--json",
            str(self.out / f"{run.name}.json"),
            *publish,
        ]

    def launch(self, run: Planned, began: float) -> RunSample:
        """Run it to its end (or RUN_TIMEOUT); its stdout and stderr kept beside its JSON."""
        report = self.out / f"{run.name}.json"
        env = self.env | ({PASSWORD_ENV: self.options.reach.password} if run.publish else {})
        stderr_path = self.out / f"{run.name}.stderr"
        with (
            (self.out / f"{run.name}.stdout").open("wb") as stdout,
            stderr_path.open("wb") as stderr,
        ):
            start = time.perf_counter()
            process = subprocess.Popen(
                self.command(run),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            code: int | None
            try:
                code = process.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
            end = time.perf_counter()
        detail: dict[str, Any] = {}
        error = None
        if code == 0 and report.is_file():
            detail = report_detail(json.loads(report.read_text()))
        else:
            lines = stderr_path.read_text(errors="replace").strip().splitlines()
            said = " / ".join(lines[-ERROR_LINES:]) or "(nothing on stderr)"
            error = f"exit {code}: {said}" if code is not None else f"timed out: {said}"
        return RunSample(
            index=run.index,
            start=round(start - began, 3),
            seconds=round(end - start, 3),
            returncode=code,
            digest=detail.get("digest"),
            cache=detail.get("cache"),
            steps=detail.get("steps", {}),
            error=error,
        )


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _drop_tarballs(directory: Path) -> None:
    for tarball in directory.glob("*.tar"):
        tarball.unlink()


def run_pass(
    name: str,
    runs: tuple[Planned, ...],
    launcher: Launcher,
    *,
    concurrent: bool,
    timed: bool = True,
    beside: Callable[[float], None] | None = None,
) -> Pass:
    """The runs once, one after another or all at once (with `beside(began)` started first,
    in a thread of its own, and waited for after the pass's clock), /proc/stat sampled all
    along."""
    helper: threading.Thread | None = None
    try:
        with Sampler() as cpu:
            began = time.perf_counter()
            if beside is not None:
                helper = threading.Thread(target=beside, args=(began,), name="beside")
                helper.start()
            if concurrent:
                with ThreadPoolExecutor(max_workers=len(runs)) as pool:
                    samples = list(pool.map(lambda r: launcher.launch(r, began), runs))
            else:
                samples = [launcher.launch(r, began) for r in runs]
            seconds = time.perf_counter() - began
    finally:
        if helper is not None:
            helper.join()  # after the pass's clock: what it watches may outlast the runs
    _drop_tarballs(launcher.out)
    return Pass(
        name=name,
        concurrent=concurrent,
        timed=timed,
        seconds=seconds,
        cpu_busy=cpu.average,
        cpu_samples=tuple(cpu.samples),
        runs=tuple(samples),
    )


def padding(nonce: str, cases: int = VICTIM_CASES) -> str:
    """A Go file for package main that makes its go build take seconds: an unused function
    with a switch of `cases` cases, and the nonce (a new package every time: never cached)."""
    body = "".join(f"\tcase {k}:\n\t\treturn {k * 7 % 1000}\n" for k in range(cases))
    return (
        "package main\n\n"
        "// Generated by bench/load/run.py for its fault check: a build that takes seconds.\n\n"
        f'var _ = "load victim {nonce}"\n\n'
        "func padding(i int) int {\n\tswitch i {\n" + body + "\t}\n\treturn -1\n}\n"
    )


class VictimClient:
    """The client killed in the fault pass: started, followed line by line on stderr, and
    SIGKILLed KILL_DELAY seconds after its build step began."""

    DESCRIPTION = (
        "during the fault pass, one more client beside the {n} runs, started first: hello "
        "world with a generated {cases:,}-case switch and a fresh nonce (its go build runs, "
        "for seconds), `multistage --no-test` for {platforms} on {base}; it was SIGKILLed "
        "{delay}s after its `build ...` progress line. The others must all succeed with the "
        "digests of their runs alone, and its process group and its `dagger session` child (in a "
        "group of its own) must be gone within {wait:.0f}s."
    )

    def __init__(self, launcher: Launcher, source: Path, runs: int) -> None:
        self.out = launcher.out
        self.command = [
            sys.executable,
            "-m",
            "pipeline",
            "multistage",
            "--no-test",
            "--no-run",
            "--source",
            str(source),
            "--name",
            "load-victim",
            "--go-image",
            launcher.options.go_image,
            "--runtime-image",
            MULTI_PLATFORM_BASE,
            *[word for p in TWO_PLATFORMS for word in ("--platform", p)],
            "--output",
            str(self.out / "load-victim.tar"),
            "--json",
            str(self.out / "load-victim.json"),
        ]
        self.env = launcher.env
        self.description = self.DESCRIPTION.format(
            n=runs,
            cases=VICTIM_CASES,
            platforms=" and ".join(TWO_PLATFORMS),
            base=MULTI_PLATFORM_BASE,
            delay=KILL_DELAY,
            wait=LEFTOVER_WAIT,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.build_gone: float | None = None  # seconds from the kill until its go build ended
        self.build_started: float | None = None
        self.killed: float | None = None
        self.compiling = 0  # its go build processes on this machine at the kill
        self.children: list[int] = []  # its own children at the kill: its session child
        self.lines: list[str] = []

    def follow(self, began: float) -> None:
        """Start it, read its stderr to the end, kill it once its build step is under way."""
        self.started = time.perf_counter() - began
        with (self.out / "load-victim.stdout").open("wb") as stdout:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: what it leaves is found
            )
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if line.startswith(BUILD_STARTED) and self.killed is None:
                self.build_started = time.perf_counter() - began
                time.sleep(KILL_DELAY)
                self.compiling = len(_victim_builds())
                self.children = _children(self.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.killed = time.perf_counter() - began
        self.process.wait()
        (self.out / "load-victim.stderr").write_text("\n".join(self.lines) + "\n")
        if self.killed is not None and self.compiling:
            self._watch_builds(began)

    def _watch_builds(self, began: float) -> None:
        """How long after the kill its go build processes were gone (cancelled by the engine,
        or done), if within BUILD_WATCH seconds."""
        deadline = time.monotonic() + BUILD_WATCH
        while _victim_builds():
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        self.build_gone = time.perf_counter() - began - (self.killed or 0.0)

    def leftover(self) -> tuple[str, ...]:
        """The live processes of its group and its children at the kill (its session child
        has a group of its own), after up to LEFTOVER_WAIT seconds; then killed."""
        if self.process is None:
            return ()
        group, deadline = self.process.pid, time.monotonic() + LEFTOVER_WAIT

        def alive() -> list[str]:
            return _group_members(group) + _live(self.children)

        found = alive()
        while found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = alive()
        for pid in (group, *self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        return tuple(dict.fromkeys(found))

    def stop(self) -> None:
        """Killed, if it still runs (the load run ended early)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def result(self, leftover: tuple[str, ...]) -> Victim:
        return Victim(
            description=self.description,
            command=" ".join(self.command[1:]),
            started=round(self.started, 3),
            build_started=round(self.build_started, 3) if self.build_started else None,
            killed=round(self.killed, 3) if self.killed else None,
            returncode=self.process.returncode if self.process else None,
            build_done=any(line.startswith(BUILD_DONE) for line in self.lines),
            leftover=leftover,
            compiling=self.compiling,
            build_gone=round(self.build_gone, 2) if self.build_gone is not None else None,
            said=next((line for line in reversed(self.lines) if line.strip()), ""),
        )


def _victim_builds() -> list[str]:
    """The PIDs of the victim's `go build` processes, if its engine runs on this machine."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if words[:2] == [b"go", b"build"] and b"/out/load-victim" in words:
            found.append(cmdline.parent.name)
    return found


def _children(parent: int) -> list[int]:
    """The PIDs of a process's children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):  # gone meanwhile
            if stat.read_text().rpartition(")")[2].split()[1] == str(parent):
                found.append(int(stat.parent.name))
    return found


def _live(pids: list[int]) -> list[str]:
    """`PID COMMAND` of each of `pids` still alive (not a zombie)."""
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/stat").read_text()
            if text.rpartition(")")[2].split()[0] != "Z":
                found.append(f"{pid} {text[text.find('(') + 1 : text.rfind(')')]}")
    return found


def _group_members(group: int) -> list[str]:
    """`PID COMMAND` of each live (not zombie) process in a process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            command = text[text.find("(") + 1 : text.rfind(")")]
            found.append(f"{stat.parent.name} {command}")
    return found


def _fault_pass(
    runs: tuple[Planned, ...], launcher: Launcher, source: Path, say: Callable[[str], None]
) -> tuple[Pass, Victim]:
    victim = VictimClient(launcher, source, len(runs))
    try:
        fault = run_pass("fault", runs, launcher, concurrent=True, beside=victim.follow)
        leftover = victim.leftover()
    finally:
        victim.stop()
    result = victim.result(leftover)
    say(
        f"fault: victim killed at {result.killed}s (build started {result.build_started}s), "
        f"exit {result.returncode}; {len(fault.failed)} of {len(runs)} others failed"
    )
    return fault, result


def _victim_source(root: Path, nonce: str) -> Path:
    """A copy of hello world with the padding: the victim's own source."""
    target = root / "victim"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(REPO / "go-src", target)
    (target / "load_padding.go").write_text(padding(nonce))
    return target


def wait_for_engine(reach: Reach, say: Callable[[str], None]) -> float | None:
    """Seconds waited until the engine's address answers (None: it did at once); BenchError
    if it does not within ENGINE_WAIT. Others' tests on a shared test bed restart it."""
    from pipeline.engine.address import Address  # imports anyio: not for `--help`

    runner = Address.parse(reach.runner_host)
    if runner is None:
        return None  # ssh://, image://...: nothing to probe from here
    start = time.monotonic()
    why = runner.probe()
    if why is None:
        return None
    say(f"engine: {reach.address} not answering ({why}); waiting up to {ENGINE_WAIT:.0f}s")
    while why is not None:
        if time.monotonic() - start > ENGINE_WAIT:
            raise BenchError(
                f"the engine at {reach.address} did not answer in {ENGINE_WAIT:.0f}s: {why}"
            )
        time.sleep(2)
        why = runner.probe()
    return time.monotonic() - start


def _say_pass(one: Pass, say: Callable[[str], None]) -> None:
    failed = "".join(f"; run {r.index} failed: {r.error}" for r in one.failed)
    say(
        f"{one.name}: {len(one.runs)} runs in {one.seconds:.1f}s, CPU busy {one.cpu_busy:.0f}%"
        + failed
    )


def run(options: LoadOptions, command: str, say: Callable[[str], None]) -> LoadResults:
    """The whole load run; `say` gets a line per pass."""
    begin = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    described = machine.describe(docker=None, ko=None)
    with Sampler() as idle:  # how busy the machine was before any run of ours
        time.sleep(IDLE_SECONDS)
    described |= {"cpu_busy_before": round(idle.average, 1), "idle_seconds": IDLE_SECONDS}
    root = options.work / "load"
    sources = {}
    for name in options.programs:
        say(f"{name}: copying {PROGRAMS[name].origin}")
        sources[name] = fetch(PROGRAMS[name], root)
    runs = plan(options.runs, options.programs)
    waits: dict[str, float] = {}  # seconds a pass waited for the engine (others restart it)

    def launcher(name: str) -> Launcher:
        """The pass's own directory, emptied, once the engine answers."""
        waited = wait_for_engine(options.reach, say)
        if waited is not None:
            waits[name] = round(waited, 1)
        return Launcher(options, sources, _fresh(root / "out" / name))

    say(f"engine: asking {options.reach.address} its version")
    wait_for_engine(options.reach, say)
    engine = engine_call("version", env=environment(options.reach, root / "src"))

    passes: list[Pass] = []
    warm = run_pass("warm-up", runs, launcher("warm-up"), concurrent=False, timed=False)
    _say_pass(warm, say)
    passes.append(warm)
    if warm.failed:
        first = warm.failed[0]
        raise BenchError(f"warm-up: run {first.index} failed, {first.error}")
    for name, concurrent in (("sequential", False), ("concurrent", True)):
        one = run_pass(name, runs, launcher(name), concurrent=concurrent)
        _say_pass(one, say)
        passes.append(one)
    victim = None
    if options.faults:
        fault_launcher = launcher("fault")
        source = _victim_source(root / "src", started)
        fault, victim = _fault_pass(runs, fault_launcher, source, say)
        passes.append(fault)
    described |= {
        "dagger_engine": engine["engine_version"],
        "engine_address": options.reach.address,
        "loadavg_end": machine.loadavg(),
        "engine_waits": waits,
    }
    return LoadResults(
        started=started,
        seconds=time.perf_counter() - begin,
        command=command,
        options=options.described() | {"description": description(options, runs)},
        machine=described,
        warm=WARM,
        runs=runs,
        passes=tuple(passes),
        victim=victim,
    )
