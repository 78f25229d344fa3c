"""Reaching the Dagger engine: the session (opened and closed here), the engine's clock, the
source upload and its retries, and the engine's errors turned into ours, each one line."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import anyio
import dagger
import httpx
import tenacity
from dagger import dag
from gql.transport.exceptions import TransportError

from pipeline import stopping
from pipeline.clock import StepHook
from pipeline.engine import provision, schema, watchdog
from pipeline.engine.address import Address, from_env
from pipeline.errors import (
    BuildFailed,
    EngineGone,
    EngineUnavailable,
    OutputError,
    PipelineError,
    RegistryError,
    UsageError,
    auth_failed,
    unreachable_reason,
)
from pipeline.goerrors import module_refusal
from pipeline.image import layer_cache
from pipeline.image.oci import BaseLayers, Layer
from pipeline.outputs import cache_home
from pipeline.refs import Platform, parse_platform
from pipeline.settings import BUILD_DIR, Settings

T = TypeVar("T")
UPLOAD_TRIES = 3  # a file saved while the source is uploaded: read the tree again, twice


@dataclass
class Session:
    """What the builds of one Dagger session share."""

    native: Platform
    temp: Path
    hook: StepHook | None = None
    # Each base's layers for a platform, as its registry serves them (pipeline.registry.bases): a
    # pinned base never changes, so read once per session.
    bases: dict[tuple[str, str], BaseLayers] = field(default_factory=dict)
    # Each layer read once (in memory; in_session's, big ones, kept between runs too).
    layers: MutableMapping[str, Layer] = field(default_factory=dict)
    # Each layer recompressed once (in memory; in_session's kept between runs too).
    compressed: MutableMapping[str, tuple[bytes, str]] = field(default_factory=dict)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    started: float = 0.0  # the engine's clock when the session opened, once `clock` is set
    clock: anyio.Event = field(default_factory=anyio.Event)
    # Images pinned for the session's own steps (the Go caches' helper): requested → pinned,
    # for the lock file.
    pins: dict[str, str] = field(default_factory=dict)


async def _engine_clock(session: Session) -> None:
    """Read the engine's wall clock as the session opens (the host's may differ, e.g. when the
    engine runs in a VM): the time of a file the engine writes, under a name never used
    before (so no cache answers), copied out by Directory.export, which keeps it. No image
    and no exec: nothing is asked of the Go image. It runs beside the first build."""
    name = uuid.uuid4().hex
    where = Path(tempfile.mkdtemp(prefix="clock-", dir=session.temp))
    await dag.directory().with_new_file(name, "").export(str(where))
    session.started = (where / name).stat().st_mtime
    shutil.rmtree(where, ignore_errors=True)
    session.clock.set()


# How the session's transport fails: the SDK's GraphQL client retries a failed request, then
# raises tenacity's RetryError with the transport's error (httpx's, gql's) as its cause.
SESSION_FAILURES = (tenacity.RetryError, httpx.HTTPError, TransportError)


def session_gone(err: BaseException) -> EngineGone:
    """Our error for a session that stopped answering: its server answers, its engine does
    not (`dagger run`'s session answers 502 once its engine is gone). EngineGone, which also
    ends a `dagger run` above us (pipeline.cli.launch)."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, httpx.HTTPError | TransportError):
        seen = seen.__cause__
    shown = seen or err
    said = str(shown).strip().splitlines()[0] if str(shown).strip() else type(shown).__name__
    return EngineGone(
        f"the Dagger session stopped answering ({said}): is its engine gone? nothing was "
        "written; run again once it is back"
    )


def first(err: BaseException) -> BaseException:
    """The first failure inside task groups (anyio raises them as exception groups)."""
    while isinstance(err, BaseExceptionGroup):
        err = err.exceptions[0]
    return err


_CHANGED_IN_UPLOAD = re.compile(r'conflict at "([^"]+)": mod time changed')


def _changed_in_upload(err: BaseException) -> str | None:
    """The file the engine saw change while it was uploading the source, if that failed."""
    err = first(err)
    found = _CHANGED_IN_UPLOAD.search(str(err)) if isinstance(err, dagger.QueryError) else None
    return found.group(1) if found else None


async def uploading(attempt: Callable[[Settings], Awaitable[T]], settings: Settings) -> T:
    """Run `attempt(settings)`, which uploads the source; if a file changed while it was being
    uploaded (an editor saving, a generator writing), run it again with settings that read the
    tree from the host anew, up to UPLOAD_TRIES times in all."""
    for tried in range(1, UPLOAD_TRIES + 1):
        try:
            return await attempt(settings if tried == 1 else replace(settings, reload_source=True))
        except (dagger.QueryError, ExceptionGroup) as err:
            if tried == UPLOAD_TRIES or _changed_in_upload(err) is None:
                raise
    raise AssertionError("unreachable: the last try returns or raises")


_RESOLVING = re.compile(r'failed to resolve (?:source metadata for |image )"([^"]+)"')
_DIALING = re.compile(r"dial tcp ([\w.\-\[\]:]+?):\s")


def query_failed(err: dagger.QueryError, settings: Settings) -> PipelineError:
    """One line for an engine error that is not a failed command: what, and what to do."""
    message = str(err)
    head = message.splitlines()[0] if message else type(err).__name__
    image = _RESOLVING.search(message)
    dialed = _DIALING.search(message)
    registry = (
        dialed.group(1)
        if dialed
        else (settings.publish.registry if settings.publish else "the registry")
    )
    changed = _CHANGED_IN_UPLOAD.search(message)
    if changed:
        return PipelineError(
            f"{changed.group(1)} kept changing while the source was uploaded ({UPLOAD_TRIES} "
            "tries): run again once the tree is still"
        )
    if "engine is shutting down" in message:
        return EngineGone(
            "the Dagger engine is shutting down (stopped during the run): nothing was written;"
            " run again once it is back"
        )
    if "no space left on device" in message:
        return OutputError(f"no space left on the device of the output: {head}")
    if "401 Unauthorized" in message or "unauthorized" in message.lower():
        return auth_failed(
            settings.publish.registry if settings.publish and not image else registry
        )
    reason = unreachable_reason(message)
    if reason:
        return RegistryError(
            f"registry {registry} unreachable ({reason}): is it up, is the address right?"
        )
    if image and "not found" in message:
        return RegistryError(
            f"image {image.group(1)} not found: check its name and tag, and that its registry "
            "has it"
        )
    return PipelineError(head)


async def exec_step(work: Awaitable[T], image: str, shown: str) -> T:
    """`work`, a step's result (a helper's, say); a command that fails there is one
    PipelineError that names the command (`shown`), the image and the first line the command
    printed."""
    try:
        return await work
    except dagger.ExecError as err:
        said = next(
            (
                line.strip()
                for part in (err.stderr, err.stdout)
                for line in part.splitlines()
                if line.strip()
            ),
            "",
        )
        raise PipelineError(
            f"`{shown}` in {image} exited {err.exit_code}"
            + (f": {said}" if said else ", printing nothing")
        ) from None


def translate(err: BaseException, settings: Settings) -> BaseException:
    """Our error for an engine error; the first failure of a task group; others unchanged."""
    err = first(err)
    if isinstance(err, dagger.ExecError):
        command = " ".join(err.command)
        refused = (
            module_refusal(f"{err.stdout}\n{err.stderr}") if err.command[:1] == ["go"] else None
        )
        if refused is not None:  # the go command's page of output says no more than this
            return BuildFailed(f"`{command}`: {refused}")
        # go test reports failures on stdout, the compiler on stderr: show both.
        return BuildFailed(
            f"`{command}` failed with exit code {err.exit_code}",
            detail="\n".join(part.strip() for part in (err.stdout, err.stderr) if part.strip()),
        )
    if isinstance(err, dagger.QueryError):
        return query_failed(err, settings)
    if isinstance(err, SESSION_FAILURES):
        return session_gone(err)
    if isinstance(err, dagger.DaggerError):
        return PipelineError(f"the Dagger engine failed: {str(err).splitlines()[0]}")
    return err


def _temp_dir() -> Path:
    """A private directory under build/ for files the run removes again."""
    try:
        BUILD_DIR.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".pipeline-", dir=BUILD_DIR)).resolve()
    except OSError as err:
        raise OutputError(
            f"cannot make a work directory in {BUILD_DIR.resolve()}: {err.strerror}"
        ) from None


@contextlib.asynccontextmanager
async def connected_to(
    address: Address | None,
) -> AsyncIterator[provision.Child | None]:
    """Connected as every run connects (and the bench's probe): our session child (started
    early by pipeline.cli.launch, if it did), the engine's schema from the cache (its key already
    asked by the child), the SDK's connection. Yields the child, if ours."""
    async with provision.session(address) as child:
        answer = await child.engine_answer() if child is not None else None
        async with (
            schema.cached(answer=answer),  # issue 14: the schema from the cache (schema.py)
            dagger.connection(dagger.Config(log_output=None)),
        ):
            yield child


async def in_session(
    body: Callable[[Session], Awaitable[T]], settings: Settings, hook: StepHook | None = None
) -> T:
    """Open the Dagger session, run `body`, and turn engine errors into ours."""
    temp = _temp_dir()
    own: BaseException | None = None
    connected = False
    address = from_env()
    # A second signal ends the process at once: the directory goes first.
    at_once = stopping.remember(lambda: shutil.rmtree(temp, ignore_errors=True))
    try:
        async with connected_to(address) as child:
            connected = True
            try:
                native = parse_platform(str(await dag.default_platform()))
                kept, scanned = layer_cache.memos(cache_home(os.environ))
                session = Session(native, temp, hook, compressed=kept, layers=scanned)
                async with anyio.create_task_group() as group:
                    group.start_soon(_engine_clock, session)
                    # An engine that goes away ends the run here, within seconds.
                    group.start_soon(watchdog.watchdog, address, child)
                    result = await body(session)
                    group.cancel_scope.cancel()
                    return result
            except (
                PipelineError,
                UsageError,
                dagger.DaggerError,
                ExceptionGroup,
                *SESSION_FAILURES,
            ) as err:
                # Leave the session first: the SDK's teardown would wrap it in a SessionError.
                own = translate(err, settings)
        assert own is not None
        raise own
    except (dagger.ClientConnectionError, dagger.ProvisionError) as err:
        if connected:  # the session broke (or its CLI failed) after it had started
            raise PipelineError(f"the Dagger session failed: {err}") from None
        raise EngineUnavailable(
            "no Dagger engine reachable: run inside `dagger run` with Docker running, "
            f"or start the test bed (sudo tests/testbed/up; . tests/testbed/env) [{err}]"
        ) from None
    except SESSION_FAILURES as err:  # while connecting
        raise session_gone(err) from None
    finally:
        stopping.forget(at_once)
        shutil.rmtree(temp, ignore_errors=True)
