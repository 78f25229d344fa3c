"""Fixtures that give tests the test bed (tests/testbed/env) and a real Dagger engine, and the
closing line `engine tests: N passed, M failed, K skipped (no engine)`.

Engine tests are marked `engine`. They use an engine that is already reachable (under
`dagger run pytest`, or with _EXPERIMENTAL_DAGGER_RUNNER_HOST set), else the test bed's; with
none, they skip, and say how to get one.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import dagger
import pytest
import requests

from pipeline.engine.address import Address
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "tests" / "testbed" / "env"
NO_ENGINE = (
    "no Dagger engine: install dagger-engine and dagger on this machine, then run "
    "tests/testbed/up (or run the tests under `dagger run`)"
)


def read_env_file(path: Path) -> dict[str, str]:
    """The `export KEY=VALUE` lines of tests/testbed/env."""
    env: dict[str, str] = {}
    if not path.is_file():
        return env
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@dataclass(frozen=True)
class Testbed:
    """The test bed's addresses and credentials, as `up` wrote them."""

    __test__ = False  # not a test class, whatever pytest guesses from the name

    env: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.env[key]

    @property
    def registry(self) -> str:
        return self.env["TESTBED_REGISTRY"]

    @property
    def auth_registry(self) -> str:
        return self.env["TESTBED_AUTH_REGISTRY"]

    @property
    def docker(self) -> list[str]:
        return [self.env.get("TESTBED_DOCKER", "docker")]

    def pull_with_login(self, source: str, destination: Path) -> subprocess.CompletedProcess[str]:
        """skopeo copy of `source` (docker://… on the TLS registry) with the test bed's user,
        password and CA, into an OCI layout at `destination`."""
        creds = f"{self.env['TESTBED_AUTH_USER']}:{self.env['TESTBED_AUTH_PASSWORD']}"
        return self.skopeo(
            "copy",
            "--src-creds",
            creds,
            "--src-cert-dir",
            self.env["TESTBED_CERTS_DIR"],
            source,
            f"oci:{destination}",
        )

    def skopeo(self, *args: str) -> subprocess.CompletedProcess[str]:
        """skopeo inside the test bed's network namespace (where its registries listen)."""
        command = ["skopeo", *args]
        if Path(f"/proc/{os.getpid()}/ns/net").resolve() != Path(self.env["TESTBED_NETNS"]):
            command = ["nsenter", f"--net={self.env['TESTBED_NETNS']}", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def registry_digest(testbed: Testbed, ref: str) -> str:
    """The digest of the manifest the plain registry serves for `ref` (tag or digest)."""
    raw = testbed.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    return "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest()


MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def put_blob(base: str, repository: str, data: bytes) -> dict[str, object]:
    """Upload `data` as a blob (POST, then PUT with its digest); its descriptor's fields."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if location.startswith("http") else base + location
    joiner = "&" if "?" in location else "?"
    done = requests.put(f"{location}{joiner}digest={digest}", data=data, timeout=30)
    assert done.status_code == 201, done.text
    return {"digest": digest, "size": len(data)}


def push_two_platform_base(registry: str, source: str = "testbed/static") -> str:
    """`testbed/static:two-platform` in the registry at `registry` (plain HTTP): an index of a
    linux/amd64 and a linux/arm64 image. Both hold the static base's layer (CA certificates,
    tzdata, users: nothing that runs), and the arm64 one a layer of its own (etc/platform),
    so that the two platforms' base layers differ. Idempotent; its reference with a tag."""
    base = f"http://{registry}"
    accept = {"Accept": DOCKER_MANIFEST}
    static = requests.get(f"{base}/v2/{source}/manifests/bookworm", headers=accept, timeout=30)
    assert static.status_code == 200, static.text
    manifest = static.json()
    config = requests.get(f"{base}/v2/{source}/blobs/{manifest['config']['digest']}", timeout=30)
    arm = json.loads(config.content)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("etc/platform")
        data = b"linux/arm64\n"
        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
        tar.addfile(info, io.BytesIO(data))
    extra_tar = buffer.getvalue()
    extra = gzip.compress(extra_tar, mtime=0)
    arm["architecture"], arm["variant"] = "arm64", "v8"
    arm["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(extra_tar).hexdigest())
    arm.setdefault("history", []).append({"created_by": "COPY platform /etc/platform"})
    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
    arm_manifest = {
        **manifest,
        "config": {**manifest["config"], **put_blob(base, source, json.dumps(arm).encode())},
        "layers": [*manifest["layers"], {**layer, **put_blob(base, source, extra)}],
    }
    entries = []
    for arch, document in (("amd64", static.content), ("arm64", json.dumps(arm_manifest).encode())):
        put = requests.put(
            f"{base}/v2/{source}/manifests/two-platform-{arch}",
            data=document, headers={"Content-Type": DOCKER_MANIFEST}, timeout=30,
        )  # fmt: skip
        assert put.status_code == 201, put.text
        platform = {
            "os": "linux",
            "architecture": arch,
            **({"variant": "v8"} if arch == "arm64" else {}),
        }
        entries.append({
            "mediaType": DOCKER_MANIFEST, "digest": put.headers["Docker-Content-Digest"],
            "size": len(document), "platform": platform,
        })  # fmt: skip
    index = {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": entries}
    put = requests.put(
        f"{base}/v2/{source}/manifests/two-platform",
        data=json.dumps(index).encode(), headers={"Content-Type": MANIFEST_LIST}, timeout=30,
    )  # fmt: skip
    assert put.status_code == 201, put.text
    return f"{registry}/{source}:two-platform"


def inside_namespace(testbed: Testbed) -> bool:
    """Whether this process runs in the test bed's network namespace (its registries')."""
    return os.stat("/proc/self/ns/net").st_ino == os.stat(testbed["TESTBED_NETNS"]).st_ino


@pytest.fixture
def inside(testbed: Testbed) -> Testbed:
    """The test bed, from inside its network namespace (where its registries listen)."""
    if not inside_namespace(testbed):
        pytest.skip("run inside the test bed's namespace: tests/testbed/exec .venv/bin/pytest")
    return testbed


@pytest.fixture(scope="session")
def two_platform_base(testbed: Testbed) -> str:
    if not inside_namespace(testbed):
        pytest.skip("run inside the test bed's namespace: tests/testbed/exec .venv/bin/pytest")
    return push_two_platform_base(testbed.registry)


def go_images(testbed: Testbed) -> dict[str, str]:
    """The Go images users have, as the test bed serves them: the Debian golang image, one on
    busybox (for golang:*-alpine) and one without a shell (for distroless-style Go images)."""
    return {
        "debian": "golang:1.26",
        "busybox": testbed["TESTBED_GO_BUSYBOX_IMAGE"],
        "bare": testbed["TESTBED_GO_BARE_IMAGE"],
    }


T = TypeVar("T")


def in_session(engine_env: dict[str, str], work: Callable[[], Awaitable[T]]) -> T:
    """`work()` awaited in a Dagger session on the engine of `engine_env`: the SDK reads the
    engine's address from this process's environment, set so while the session lasts and
    then as it was."""

    async def session() -> T:
        async with dagger.connection(dagger.Config(log_output=None)):
            return await work()

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in engine_env.items() if "DAGGER" in k})
    try:
        return anyio.run(session)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def unique() -> str:
    """A name no earlier run used: for repositories in the test bed's registries."""
    return f"{time.time_ns()}".encode().hex()[-16:]


def start_fresh_runner(*options: str) -> dict[str, str]:
    """`tests/testbed/up --fresh-runner` (a new runner's engine and dockerd, on emptied
    state; `--kept`: the engine's on the kept one, if any): what it says, `runner host` and
    `runner docker` (and `runner state`). stop_fresh_runner() ends it."""
    up = subprocess.run(
        [str(ROOT / "tests" / "testbed" / "up"), "--fresh-runner", *options],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr[-2000:]
    return dict(line.partition(": ")[::2] for line in up.stdout.splitlines())


def stop_fresh_runner() -> None:
    subprocess.run([str(ROOT / "tests" / "testbed" / "down"), "--fresh-runner"], check=False)


def _engine_reachable(env: dict[str, str]) -> bool:
    """An engine answers: a `dagger run` session, or the runner host's address (a unix
    socket, or a TCP or mutual-TLS port, as a shared engine is reached)."""
    if os.environ.get("DAGGER_SESSION_PORT"):
        return True
    runner = Address.parse(env.get("_EXPERIMENTAL_DAGGER_RUNNER_HOST", ""))
    return runner is not None and runner.probe() is None


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    env = read_env_file(ENV_FILE)
    if not env:
        pytest.skip("the test bed is down: run tests/testbed/up")
    return Testbed(env)


@pytest.fixture(scope="session")
def engine_env(testbed: Testbed) -> dict[str, str]:
    """The environment a pipeline subprocess needs to reach the engine and the test bed."""
    env = {**os.environ, **testbed.env}
    for key in ("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "_EXPERIMENTAL_DAGGER_CLI_BIN"):
        if key in os.environ:
            env[key] = os.environ[key]  # an engine given from outside wins
    if not _engine_reachable(env):
        pytest.skip(NO_ENGINE)
    env.pop(PASSWORD_ENV, None)
    return env


PASSWORD_ENV = "PIPELINE_REGISTRY_PASSWORD"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def pipeline(engine_env: dict[str, str]) -> PipelineRunner:
    return PipelineRunner(engine_env)


class PipelineRunner:
    """Runs `python -m pipeline ...` as a user would, against the real engine."""

    def __init__(self, env: dict[str, str], cwd: Path = ROOT) -> None:
        self.env = env
        self.cwd = cwd  # where build/ is: the work directories of each run (BUILD_DIR)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pipeline", *args]

    def _importable(self) -> dict[str, str]:
        """`-m pipeline` finds the package in the working directory: elsewhere, through
        PYTHONPATH."""
        return {} if self.cwd == ROOT else {"PYTHONPATH": str(ROOT)}

    def __call__(
        self,
        *args: str,
        extra_env: dict[str, str] | None = None,
        timeout: float = 900,
        prefix: tuple[str, ...] = (),
    ) -> Ran:
        done = subprocess.run(
            [*prefix, *self.command(*args)],
            cwd=self.cwd,
            env={**self.env, "COLUMNS": "200", **self._importable(), **(extra_env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def started(
    command: Sequence[str], *, sigint: signal.Handlers = signal.SIG_DFL, **options: Any
) -> Iterator[subprocess.Popen[str]]:
    """`command` started in a session (so a process group) of its own, with SIGINT at its
    default whatever this process inherited (started in the background by a non-interactive
    shell, it inherits SIGINT ignored, and so would every child; `sigint` says otherwise),
    and SIGHUP too (`nohup` ignores it: a child that ignores it never hangs up, as a
    terminal's would); when the block ends, however it ends, the group is killed and the
    child reaped: a failed test leaves no process behind (our `dagger session` children, in
    sessions of their own, end once their parent has gone)."""

    def defaults() -> None:
        signal.signal(signal.SIGINT, sigint)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    process = subprocess.Popen(
        command, start_new_session=True, preexec_fn=defaults, text=True, **options
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()  # reaped (its pipes may still be read by the test's threads)


@pytest.fixture
def children() -> Iterator[contextlib.ExitStack]:
    """Where a test enters its started() children: each is ended when the test ends."""
    with contextlib.ExitStack() as stack:
        yield stack


def go_tests() -> set[int]:
    """The Go test binaries running (in an engine's containers), by pid. A test whose engine
    was SIGKILLed leaves its own running for a while: a test counts only those it started."""
    running = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and b"-test.timeout=" in (entry / "cmdline").read_bytes():
                running.add(int(entry.name))
    return running


def engine_pid(testbed: Testbed) -> int:
    return int(Path(testbed["TESTBED_ENGINE_PID"]).read_text().strip())


def ended(pid: int) -> bool:
    """The process has exited: gone, or a zombie (this machine's init reaps orphans, such as
    the test bed's engine, only every two seconds or so)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.fixture
def engine_back(testbed: Testbed) -> Iterator[None]:
    """The test bed's engine running again after the test, whatever it did to it: the engine
    it stopped waited for until it has exited (a second engine cannot start on its state),
    then `up`. An engine the test started again itself is running already: no wait."""
    before = engine_pid(testbed)
    yield
    pid = engine_pid(testbed)
    deadline = time.monotonic() + 60
    while pid == before and time.monotonic() < deadline and not ended(pid):
        time.sleep(0.5)
    up = subprocess.run(
        [str(ROOT / "tests" / "testbed" / "up")], capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr[-2000:]


# --- work started ahead --------------------------------------------------------------
# A test of the second phase marked `ahead(prepare)` has a part that needs nothing but the fresh
# runner. `prepare(request)` (any test's request: it reads session fixtures) returns that part as
# a function, which runs in a thread from the first test of the second phase that does not use
# the fresh runner on (start_ahead), beside the tests that use the test bed's engine alone. The
# test takes its result with ahead_of(request).
_AHEAD: dict[str, Future[Any]] = {}
_AHEAD_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")


def _start(item: pytest.Item, request: pytest.FixtureRequest) -> Future[Any]:
    if item.nodeid not in _AHEAD:
        prepare = item.get_closest_marker("ahead").args[0]  # type: ignore[union-attr]
        _AHEAD[item.nodeid] = _AHEAD_POOL.submit(prepare(request))
    return _AHEAD[item.nodeid]


@pytest.fixture(autouse=True)
def start_ahead(request: pytest.FixtureRequest) -> None:
    """At a second-phase test that does not use the fresh runner (which every test that does
    has finished by then: _second_phase), the work of each test marked `ahead` started."""
    item = request.node
    if _second_phase(item) not in (2, 3, 4):
        return
    for other in item.session.items:
        if other.get_closest_marker("ahead") and other.nodeid not in _AHEAD:
            with contextlib.suppress(pytest.skip.Exception):  # no engine: that test skips
                _start(other, request)


def ahead_of(request: pytest.FixtureRequest) -> Any:
    """The result of the test's work started ahead (started now, if it was not)."""
    return _start(request.node, request).result()


@dataclass(frozen=True)
class DoomedEngine:
    """An engine a test may SIGKILL: a fresh runner's. Killed, an engine throws its whole
    cache away at its next start; the test bed's own engine keeps what the tests built (and
    the next run of the suite finds it warm)."""

    pid: int
    pipeline: PipelineRunner  # `python -m pipeline` against it


@pytest.fixture
def doomed_engine(engine_env: dict[str, str], testbed: Testbed) -> Iterator[DoomedEngine]:
    """A runner's engine that has built before (_doomed_runner), for the test to kill; the
    runner is stopped after the test. Its runs build on the test bed's Go image on busybox,
    67MB to golang:1.26's 232MB, the one a first warm-up pulls (what is tested is the engine
    going away, on any Go image)."""
    try:
        said = _doomed_runner(engine_env, testbed)
        env = _on_runner(engine_env, testbed, said)
        yield DoomedEngine(int(said["runner engine pid"]), PipelineRunner(env))
    finally:
        stop_fresh_runner()


def _on_runner(
    engine_env: dict[str, str], testbed: Testbed, said: dict[str, str]
) -> dict[str, str]:
    return {
        **engine_env,
        "_EXPERIMENTAL_DAGGER_RUNNER_HOST": said["runner host"],
        "PIPELINE_GO_IMAGE": testbed["TESTBED_GO_BUSYBOX_IMAGE"],
    }


def _doomed_runner(engine_env: dict[str, str], testbed: Testbed) -> dict[str, str]:
    """A fresh runner whose engine starts on the kept state (`up --fresh-runner --kept`): that
    of a runner's engine that has built what the doomed engines' runs build (the Go image
    pulled, go vet's and go test's standard library compiled), and then stopped. Its runs
    reach their go test in seconds, not after 15 s of pulling and compiling. Where there is
    none (the first time, or another engine binary's), the builds run on an empty one, which
    is kept (`down --fresh-runner --keep`), and the runner started again on it."""
    said = start_fresh_runner("--kept")
    if said["runner state"] == "kept state":
        return said
    warm = PipelineRunner(_on_runner(engine_env, testbed, said))
    for variant in ("builder", "multistage"):
        ran = warm(variant, "--source", str(ROOT / "go-src"), "--runtime-image", "busybox:1.35",
                   "--no-run", "--no-output")  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    down = [str(ROOT / "tests" / "testbed" / "down"), "--fresh-runner", "--keep"]
    kept = subprocess.run(down, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stderr
    said = start_fresh_runner("--kept")
    assert said["runner state"] == "kept state", said
    return said


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The Settings each command would run with (compare: each of its images), in this
    process: the CLI's execute functions record them and build nothing (no PIPELINE_*
    variable of the caller's leaks in)."""
    from pipeline.cli import commands  # Typer: only for the tests that ask

    got: list[Settings] = []

    def fake_execute(settings: Settings, *, verbose: bool) -> int:
        got.append(settings)
        return 0

    def fake_images(jobs: tuple[Settings, ...], *, verbose: bool) -> int:
        got.extend(jobs)
        return 0

    def fake_compare(jobs: tuple[Settings, ...], *args: object, verbose: bool) -> int:
        got.extend(jobs)
        return 0

    monkeypatch.setattr(commands, "execute", fake_execute)
    monkeypatch.setattr(commands, "execute_images", fake_images)
    monkeypatch.setattr(commands, "execute_verify", fake_execute)
    monkeypatch.setattr(commands, "execute_compare", fake_compare)
    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)
    return got


# --- the closing line -------------------------------------------------------------------

_OUTCOMES: Counter[str] = Counter()
# tests/run runs the tests in two phases (pytest-xdist's workers, then the disruptive tests
# alone): each phase adds its counts to this file, and the last line sums them.
TALLY_ENV = "PIPELINE_TESTS_TALLY"


def disruptive(item: pytest.Item) -> bool:
    """Whether the test restarts the test bed's engine, or kills or prunes a fresh runner's
    (which other tests use too): marked so, or it asks for the engine back afterwards."""
    return bool(item.get_closest_marker("disruptive")) or _restarts(item)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: engine_back's tests are marked
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("engine"):
            # Reports carry it to pytest-xdist's controller, which sees no items.
            item.user_properties.append(("engine", True))
        if disruptive(item) and not item.get_closest_marker("disruptive"):
            item.add_marker(pytest.mark.disruptive)  # so that `-m disruptive` selects it
        if {"doomed_engine", "fresh_runner"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.runner)
    # The tests that share a warm engine first: the longest files first (LONGEST), so that
    # pytest-xdist, which hands out files in this order, does not leave one worker a long file
    # while the other has nothing left. Then tests/run's second phase (_second_phase).
    items[:] = sorted(items, key=lambda item: (_second_phase(item), _rank(item)))


def _second_phase(item: pytest.Item) -> int:
    """Where the test runs in tests/run's second phase, one test at a time (0: in the first):
    1. those that use the fresh runner;
    2. the others marked alone or disruptive, on the test bed's engine, while the work of the
       tests marked `ahead` runs on the fresh runner beside them (start_ahead);
    3. those marked `ahead`, which wait for their work started ahead;
    4. those that want the test bed's engine back after restarting it: a restarted engine no
       longer holds the Go image's layer as it pulled it, and gzips it again at its next
       export of a naive or builder image (22 s of its CPU)."""
    if not (disruptive(item) or item.get_closest_marker("alone")):
        return 0
    if item.get_closest_marker("runner"):
        return 1
    if item.get_closest_marker("ahead"):
        return 3
    return 4 if _restarts(item) else 2


# The test files whose engine work takes longest, longest first (CPU seconds of a serial run
# at stop 39's start: 302, 81, 64, 48, 42; test_gocache's kept REFs took about 45 off the first).
LONGEST = ("test_gocache.py", "test_reproducible.py", "test_bench_load.py", "test_variants.py",
           "test_run.py")  # fmt: skip


def _rank(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST.index(name) if name in LONGEST else len(LONGEST)


def _restarts(item: pytest.Item) -> bool:
    """Whether the test stops the test bed's engine and has it started again after."""
    marked = bool(item.get_closest_marker("restarts"))
    return marked or "engine_back" in getattr(item, "fixturenames", ())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # From the report, not the items: under pytest-xdist the controller sees only reports.
    if not dict(report.user_properties).get("engine"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped:
            reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
            _OUTCOMES["skipped (no engine)" if NO_ENGINE in reason else "skipped"] += 1
        else:
            _OUTCOMES[report.outcome] += 1


def _line(outcomes: Counter[str]) -> str:
    parts = [f"{outcomes[k]} {k}" for k in ("passed", "failed")]
    parts.append(f"{outcomes['skipped (no engine)']} skipped (no engine)")
    if outcomes["skipped"]:
        parts.append(f"{outcomes['skipped']} skipped (other reasons)")
    return ", ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return  # a pytest-xdist worker: the controller counts
    tally = os.environ.get(TALLY_ENV)
    if not tally:
        terminalreporter.write_line("engine tests: " + _line(_OUTCOMES), bold=True)
        return
    path = Path(tally)
    said = path.read_text() if path.is_file() else ""  # mktemp's empty file: no phase yet
    before: Counter[str] = Counter(json.loads(said) if said.strip() else {})
    path.write_text(json.dumps(before + _OUTCOMES))
    terminalreporter.write_line("engine tests in this phase: " + _line(_OUTCOMES), bold=True)
    terminalreporter.write_line("engine tests: " + _line(before + _OUTCOMES), bold=True)


@pytest.fixture(scope="module")
def cosign_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A key pair from `cosign generate-key-pair` (tests/setup installs cosign), sealed with
    tests.cosign.PASSWORD: the key file and the public key."""
    from tests.cosign import PASSWORD, generate_key_pair

    return generate_key_pair(tmp_path_factory.mktemp("cosign"), PASSWORD)
