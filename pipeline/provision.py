"""Reaching an engine, and noticing when it goes: the `dagger session` child is started here,
not by the SDK, so that the connect is bounded, an engine that goes away ends the run within
seconds, and the child never outlives the run.

The SDK starts the same child itself when no session is given, but waits without a bound for
its first line (the CLI retries a refused engine until its own timeout) and, at the end,
300 s for it to exit (a child whose engine died never does). Given DAGGER_SESSION_PORT and
DAGGER_SESSION_TOKEN, as `dagger run` gives them, the SDK connects to that session instead:
that is how ours is handed over.

The watchdog probes the engine's address (`_EXPERIMENTAL_DAGGER_RUNNER_HOST`) every second:
a unix socket or a TCP port that refuses, or a TLS terminator that closes the connection at
once (its engine behind it gone), PROBE_FAILURES times in a row, is an engine gone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc

from pipeline.errors import EngineUnavailable

# Seconds until the session's first line, where the engine is already running at an address
# we probed (the CLI would retry a refused one for 10 minutes). An engine the CLI starts itself
# (image://, the default) may first be pulled: that wait is the CLI's own.
CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0  # seconds a closed session may take to exit before it is killed
PROBE_EVERY = 1.0
PROBE_TIMEOUT = 2.0
PROBE_FAILURES = 3
RUNNER_HOST = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"


class EngineGone(EngineUnavailable):
    """The engine stopped answering during the run."""


@dataclass(frozen=True)
class Runner:
    """Where the engine is, as `_EXPERIMENTAL_DAGGER_RUNNER_HOST` says: the forms whose
    address can be probed from here (unix, tcp, tls)."""

    text: str
    scheme: str
    path: str = ""  # unix
    host: str = ""  # tcp, tls
    port: int = 0
    tls: ssl.SSLContext | None = None

    @classmethod
    def parse(cls, text: str) -> Runner | None:
        url = urlsplit(text)
        if url.scheme == "unix":
            return cls(text, "unix", path=url.path)
        if url.scheme in ("tcp", "tls") and url.hostname and url.port:
            context = None
            if url.scheme == "tls":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                context = ssl.create_default_context(cafile=query.get("ca_path"))
                if "cert_path" in query:
                    context.load_cert_chain(query["cert_path"], query.get("key_path"))
            return cls(text, url.scheme, host=url.hostname, port=url.port, tls=context)
        return None  # image://, kube-pod://, ssh://, ...: not ours to probe

    def probe(self) -> str | None:
        """None if the engine's address answers as a live one does, else why not."""
        try:
            if self.scheme == "unix":
                with socket.socket(socket.AF_UNIX) as raw:
                    raw.settimeout(PROBE_TIMEOUT)
                    raw.connect(self.path)
                return None
            with socket.create_connection((self.host, self.port), PROBE_TIMEOUT) as raw:
                if self.tls is None:
                    return None
                with self.tls.wrap_socket(raw, server_hostname=self.host) as tls:
                    # A terminator whose engine is gone closes at once; a live one waits
                    # for our request.
                    tls.settimeout(0.3)
                    try:
                        closed = tls.recv(1) == b""
                    except TimeoutError:
                        closed = False
                    return "the TLS terminator closed the connection" if closed else None
        except ssl.SSLError as err:
            return _tls_refusal(str(err.reason or err))
        except OSError as err:
            return err.strerror or type(err).__name__


def _tls_refusal(reason: str) -> str:
    """What a failed TLS handshake with the engine's terminator means, and what to do."""
    if "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason:
        hint = "it wants a client certificate: give cert_path and key_path in the runner host"
    elif "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        hint = "it does not trust the CA of this client's certificate (cert_path)"
    elif "CERTIFICATE_VERIFY_FAILED" in reason:
        hint = "its certificate is not signed by ca_path"
    else:
        hint = "TLS refused"
    return f"{hint}; {reason}"


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


@contextlib.asynccontextmanager
async def session(runner: Runner | None) -> AsyncIterator[anyio.abc.Process | None]:
    """A `dagger session` of our own for the SDK to connect to (the child, while it lasts);
    none under `dagger run` (its session is given) or without a CLI on the PATH (the SDK
    provisions, and says what is missing)."""
    cli = _cli()
    if os.environ.get("DAGGER_SESSION_PORT") or cli is None:
        yield None
        return
    if runner is not None and (why := await anyio.to_thread.run_sync(runner.probe)):
        raise EngineUnavailable(f"no Dagger engine at {runner.text} ({why})")
    version = metadata.version("dagger-io")
    command = [cli, "session", "--label", "dagger.io/sdk.name:python"]
    command += ["--label", f"dagger.io/sdk.version:{version}"]
    with tempfile.TemporaryDirectory(prefix="pipeline-session-") as directory:
        log = Path(directory) / "stderr"
        with log.open("wb") as stderr:
            # A group of its own: a Ctrl-C at the terminal interrupts us, and we close it;
            # it must not end on its own first (that would read as a lost engine).
            process = await anyio.open_process(command, stderr=stderr, start_new_session=True)
        try:
            params = json.loads(await _first_line(process, log, runner))
            with _handed_over(int(params["port"]), str(params["session_token"])):
                yield process
        finally:
            await _close(process)


async def _first_line(process: anyio.abc.Process, log: Path, runner: Runner | None) -> str:
    """The session's connect parameters, within CONNECT_TIMEOUT where the engine runs at an
    address we probed."""
    assert process.stdout is not None
    where = runner.text if runner else "the engine"
    buffer = b""
    with anyio.move_on_after(CONNECT_TIMEOUT if runner is not None else None) as waited:
        with contextlib.suppress(anyio.EndOfStream):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
    if waited.cancelled_caught:
        raise EngineUnavailable(
            f"the Dagger engine at {where} did not accept a session within "
            f"{CONNECT_TIMEOUT:.0f}s ({_why(log)})"
        )
    line = buffer.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith("{"):
        with anyio.move_on_after(2):
            await process.wait()  # its last words reach the log
        raise EngineUnavailable(f"no Dagger session at {where}: {_why(log)}")
    return line


async def _close(process: anyio.abc.Process) -> None:
    """End the child: stdin closed (its way to stop), then killed if it lingers."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                await process.stdin.aclose()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def watchdog(runner: Runner | None, child: anyio.abc.Process | None) -> None:
    """Return never; raise EngineGone once the engine's address stops answering
    PROBE_FAILURES times in a row, or our session child exits."""
    failures: list[str] = []
    while True:
        await anyio.sleep(PROBE_EVERY)
        if child is not None and child.returncode is not None:
            raise EngineGone(
                f"the Dagger session ended during the run (exit {child.returncode}): "
                "nothing was written; run again once the engine is back"
            )
        if runner is None:
            continue
        why = await anyio.to_thread.run_sync(runner.probe, abandon_on_cancel=True)
        failures = [*failures, why] if why else []
        if len(failures) >= PROBE_FAILURES:
            raise EngineGone(
                f"the Dagger engine at {runner.text} went away during the run ({failures[-1]}):"
                " nothing was written; run again once it is back"
            )


def runner_from_env() -> Runner | None:
    """The engine's address, if the environment names one we can probe."""
    text = os.environ.get(RUNNER_HOST, "")
    try:
        return Runner.parse(text) if text else None
    except (OSError, ssl.SSLError, ValueError) as err:
        raise EngineUnavailable(f"{RUNNER_HOST}={text}: {err}") from None
