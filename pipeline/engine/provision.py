"""Reaching an engine: the `dagger session` child is started here, not by the SDK, so that the
connect is bounded, an engine that goes away ends the run within seconds (pipeline.engine.
watchdog notices; a child whose engine is gone is killed, not waited for), and the child never
outlives the run.

The SDK starts the same child itself when no session is given, but waits without a bound for
its first line (the CLI retries a refused engine until its own timeout) and, at the end,
300 s for it to exit (a child whose engine died never does). Given DAGGER_SESSION_PORT and
DAGGER_SESSION_TOKEN, as `dagger run` gives them, the SDK connects to that session instead:
that is how ours is handed over."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path

import anyio
import anyio.to_thread

from pipeline import stopping
from pipeline.dagger_run import under_dagger_run
from pipeline.engine.address import Address, from_env
from pipeline.errors import EngineUnavailable

# Seconds until the session's first line, where the engine is already running at an address
# we probed (the CLI would retry a refused one for 10 minutes). An engine the CLI starts itself
# (image://, the default) may first be pulled: that wait is the CLI's own.
CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0  # seconds a closed session may take to exit before it is killed
CLOSE_QUICK = 0.5  # past this, a session whose engine is gone (it never exits) is killed
ASK_TIMEOUT = 60.0


def _cli() -> str | None:
    return os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN") or shutil.which("dagger")


@contextlib.contextmanager
def _handed_over(port: int, token: str) -> Iterator[None]:
    """DAGGER_SESSION_PORT and _TOKEN for the SDK while the session lasts, then as before."""
    before = {k: os.environ.get(k) for k in ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN")}
    os.environ.update(DAGGER_SESSION_PORT=str(port), DAGGER_SESSION_TOKEN=token)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _why(log: Path) -> str:
    """The child's last words (its stderr goes to a file: a pipe nobody reads would block
    it, and a task to read it would outlive the session's scope)."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


ENGINE_QUERY = "{ version __schemaVersion __schemaJSONFile { digest } }"
"""What the engine serves (pipeline.engine.schema's key), asked as soon as a session is up: the
first query of a session costs the engine tens of milliseconds, which then overlap the import."""


class Child:
    """A `dagger session` child, started at once, its first line read by a thread of its own,
    which then asks the session ENGINE_QUERY: so that it can be started before the event loop
    (pipeline.cli.launch starts it before it imports the SDK: the connect overlaps the import)."""

    def __init__(self, cli: str, address: Address | None) -> None:
        self.address = address
        self.directory = tempfile.TemporaryDirectory(prefix="pipeline-session-")
        self.log = Path(self.directory.name) / "stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.failed: str | None = None  # why no child could be started
        self.line = b""
        self.engine: dict[str, object] | None = None  # the answer to ENGINE_QUERY
        self.forget_at_once: int | None = None  # stopping's key for kill()
        self.spawned = threading.Event()  # the child started (or none will be)
        self.started = threading.Event()  # its first line read (or no child)
        self.asked = threading.Event()  # the engine's answer in (or none)
        # A daemon: a child that never answers must not keep the process from exiting.
        threading.Thread(
            target=self._start, args=(cli,), name="pipeline-session", daemon=True
        ).start()

    def _start(self, cli: str) -> None:
        try:
            self._spawn(cli)
        finally:
            self.spawned.set()
            self.started.set()
        try:
            if self.line.startswith(b"{"):
                self.engine = _ask(json.loads(self.line), ENGINE_QUERY)
        except ValueError:
            pass  # not the session's parameters: params() says what the child said
        finally:
            self.asked.set()

    def _spawn(self, cli: str) -> None:
        """The child started and its first line read, or why not (`failed`)."""
        try:
            if self.address is not None and (why := self.address.probe()):
                self.failed = f"no Dagger engine at {self.address.text} ({why})"
                return
            version = metadata.version("dagger-io")
            command = [cli, "session", "--label", "dagger.io/sdk.name:python"]
            command += ["--label", f"dagger.io/sdk.version:{version}"]
            with self.log.open("wb") as stderr:
                # A group of its own: a Ctrl-C at the terminal interrupts us, and we close it;
                # it must not end on its own first (that would read as a lost engine).
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    start_new_session=True,
                )
            # A second signal ends the process at once: the child goes with it (its stdin
            # would close then too, but it may take seconds to notice).
            self.forget_at_once = stopping.remember(self.kill)
            self.spawned.set()
            assert self.process.stdout is not None
            self.line = self.process.stdout.readline()
        except OSError as err:
            self.failed = f"cannot start the Dagger CLI {cli}: {err.strerror or err}"

    def kill(self) -> None:
        """End the child at once (it is alone in its process group), and remove its log."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.directory.name, ignore_errors=True)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    async def params(self) -> dict[str, object]:
        """The session's connect parameters, within CONNECT_TIMEOUT where the engine runs at
        an address we probed."""
        where = self.address.text if self.address else "the engine"
        bound = CONNECT_TIMEOUT if self.address is not None else None
        if not await anyio.to_thread.run_sync(self.started.wait, bound, abandon_on_cancel=True):
            raise EngineUnavailable(
                f"the Dagger engine at {where} did not accept a session within "
                f"{CONNECT_TIMEOUT:.0f}s ({_why(self.log)})"
            )
        if self.failed is not None:
            raise EngineUnavailable(self.failed)
        line = self.line.decode(errors="replace").strip()
        if not line.startswith("{"):
            if self.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await anyio.to_thread.run_sync(self.process.wait, 2)  # its last words
            raise EngineUnavailable(f"no Dagger session at {where}: {_why(self.log)}")
        params: dict[str, object] = json.loads(line)
        return params

    async def engine_answer(self) -> dict[str, object] | None:
        """The engine's answer to ENGINE_QUERY in this session; None if it gave none."""
        await anyio.to_thread.run_sync(self.asked.wait, ASK_TIMEOUT, abandon_on_cancel=True)
        return self.engine

    async def close(self) -> None:
        """End the child: stdin closed (its way to stop), then killed if it lingers."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.spawned.wait)  # the probe, then the spawn
            process = self.process
            if process is not None:
                if process.poll() is None and process.stdin is not None:
                    with contextlib.suppress(OSError):
                        process.stdin.close()
                await self._end(process)
            await anyio.to_thread.run_sync(self.asked.wait)
            if process is not None and process.stdout is not None:
                process.stdout.close()
            if self.forget_at_once is not None:
                stopping.forget(self.forget_at_once)
            self.directory.cleanup()

    async def _end(self, process: subprocess.Popen[bytes]) -> None:
        """Wait for the child to exit (its stdin closed): CLOSE_QUICK seconds, then, while the
        engine's address answers, up to CLOSE_TIMEOUT in all; then kill it."""
        if not await _exits(process, CLOSE_QUICK):
            gone = self.address is not None and await _unanswered(self.address)
            if gone or not await _exits(process, CLOSE_TIMEOUT - CLOSE_QUICK):
                process.kill()
                await anyio.to_thread.run_sync(process.wait)


async def _exits(process: subprocess.Popen[bytes], seconds: float) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return await anyio.to_thread.run_sync(process.wait, seconds) is not None
    return False


async def _unanswered(address: Address) -> bool:
    return await anyio.to_thread.run_sync(address.probe) is not None


def _ask(params: dict[str, object], query: str) -> dict[str, object] | None:
    """The data of the session's answer to `query` (plain HTTP on 127.0.0.1, as the SDK
    talks to it); None if it gave none."""
    token = base64.b64encode(f"{params['session_token']}:".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", int(str(params["port"])), ASK_TIMEOUT)
    try:
        connection.request(
            "POST",
            "/query",
            json.dumps({"query": query}),
            {"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        )
        response = connection.getresponse()
        answer = json.loads(response.read()) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
    if not isinstance(answer, dict) or answer.get("errors"):
        return None
    data = answer.get("data")
    return data if isinstance(data, dict) else None


_early: list[Child] = []  # the child pipeline.cli.launch started before the SDK was imported


def start_early() -> None:
    """Start the session child now, for the next `session()` to take (pipeline.cli.launch, before
    it imports the SDK); nothing under `dagger run` or without a CLI."""
    cli = _cli()
    if under_dagger_run(os.environ) or cli is None or _early:
        return
    try:
        address = from_env()
    except EngineUnavailable:
        return  # session() says what is wrong with the address
    _early.append(Child(cli, address))


def discard_early() -> None:
    """Close a child start_early started that no session took (the run ended before)."""
    while _early:
        child = _early.pop()
        try:
            anyio.run(child.close)
        except BaseException:
            child.kill()  # a signal cut the close short: the child must not outlive us
            raise


@contextlib.asynccontextmanager
async def session(address: Address | None) -> AsyncIterator[Child | None]:
    """A `dagger session` of our own for the SDK to connect to (the child, while it lasts);
    none under `dagger run` (its session is given) or without a CLI on the PATH (the SDK
    provisions, and says what is missing). The child start_early started, if any."""
    cli = _cli()
    if under_dagger_run(os.environ) or cli is None:
        yield None
        return
    child = _early.pop() if _early else Child(cli, address)
    try:
        params = await child.params()
        with _handed_over(int(str(params["port"])), str(params["session_token"])):
            yield child
    finally:
        await child.close()
