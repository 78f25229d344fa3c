"""pipeline.engine.schema: the key and the cache files without the engine; the hook where dagger-io
0.21.11 has it (a test that fails loudly when an upgrade moves it). Against the test bed's
engine, counting the introspection queries that leave this process (every HTTP request, the
SDK's and ours, seen at httpx's transport): a cache hit sends none; another view of the API
(the engine's answer to a CLI of another version) is fetched and kept beside the first; a
truncated file is fetched again and the build succeeds; a stale cached schema (a field
missing, or one the engine does not have) is fetched again and the query sent again."""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import anyio
import dagger
import gql
import graphql
import httpx
import pytest
from dagger import dag
from dagger._exceptions import QueryErrorValue
from dagger.client import _core, _session
from dagger.client._config import ConnectConfig
from gql.transport.httpx import HTTPXAsyncTransport

from pipeline.engine import schema
from pipeline.engine.session import Session, in_session
from pipeline.errors import PipelineError
from pipeline.settings import Settings, Variant
from tests.conftest import PipelineRunner

T = TypeVar("T")
KEY = schema.Key(
    engine="v0.21.11",
    view="v0.21.11",
    digest="sha256:" + "0" * 64,
    dagger_io="0.21.11",
    gql="4.4.0",
    graphql_core="3.3.2",
)
TINY = graphql.build_schema("type Query { greeting: String }")
INTROSPECTION_REQUEST = re.compile(rb"\b__schema\s*\{")  # not __schemaVersion, __schemaJSONFile


def introspection_of(sdl: graphql.GraphQLSchema) -> dict[str, Any]:
    return dict(graphql.introspection_from_schema(sdl))


def entry() -> schema.Entry:
    params = _session.ConnectParams(port=1, session_token="token")
    return schema.Entry(TINY, cached=True, params=params, path=Path("unused"), key=KEY)


# --- the hook, where dagger-io 0.21.11 has it -----------------------------------------------


def test_the_hook_is_where_dagger_io_0_21_11_has_it() -> None:
    installed = metadata.version("dagger-io")
    assert installed == schema.SDK_VERSION, (
        f"dagger-io {installed}: pipeline/engine/schema.py hooks the internals of dagger-io "
        f"{schema.SDK_VERSION} (dagger.client._session.GraphQLClient, "
        "dagger.client._core.Context.execute). Check they are still there and still do the "
        "same, then set SDK_VERSION"
    )
    # The SDK makes its gql client through this module-level name, and fetches the schema.
    assert getattr(_session, schema.CLIENT_NAME) is gql.Client
    source = inspect.getsource(_session.ClientSession.__init__)
    assert f"{schema.CLIENT_NAME}(" in source
    assert "fetch_schema_from_transport=True" in source
    # ... and its HTTP transport through this one (which loads the CA bundle by default).
    assert issubclass(getattr(_session, schema.TRANSPORT_NAME), httpx.AsyncHTTPTransport)
    assert f"transport={schema.TRANSPORT_NAME}()" in source
    unhooked = _session.ClientSession(
        _session.ConnectParams(port=1, session_token="token"),
        ConnectConfig(retry=None),  # .client is then the gql client itself
    )
    assert isinstance(unhooked.client, gql.Client)
    assert unhooked.client.fetch_schema_from_transport is True
    assert unhooked.client.schema is None
    # Every query of the SDK goes through Context.execute(self, return_type=None).
    execute = _core.Context.execute
    assert inspect.iscoroutinefunction(execute)
    assert list(inspect.signature(execute).parameters) == ["self", "return_type"]
    assert "get_schema()" in inspect.getsource(_core.Context.build)


def test_while_hooked_the_sdk_s_client_has_the_schema_and_fetches_none() -> None:
    given = entry()
    original = (_session.GraphQLClient, _core.Context.execute)  # type: ignore[attr-defined]
    telemetry_transport = _session.TelemetryTransport
    with schema.hooked(given):
        session = _session.ClientSession(
            _session.ConnectParams(port=1, session_token="token"),
            ConnectConfig(retry=None),
        )
        assert isinstance(session.client, gql.Client)
        assert session.client.schema is TINY
        assert session.client.fetch_schema_from_transport is False
        assert given.clients == [session.client]
        assert _core.Context.execute is not original[1]
        # Its transport checks no certificate (plain HTTP to 127.0.0.1): none was loaded.
        outer = session.client.transport
        assert isinstance(outer, HTTPXAsyncTransport)
        inner = outer.kwargs["transport"]
        assert isinstance(inner, telemetry_transport)
        assert inner._pool._ssl_context is not None
        assert inner._pool._ssl_context.verify_mode == ssl.CERT_NONE
    assert (_session.GraphQLClient, _core.Context.execute) == original  # type: ignore[attr-defined]
    assert _session.TelemetryTransport is telemetry_transport  # put back


# --- the key and the files ------------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in asdict(KEY) if f != "digest"] + ["digest"])
def test_each_part_of_the_key_names_another_file(field: str) -> None:
    changed = replace(KEY, **{field: "other"})
    assert changed.file_name != KEY.file_name, f"{field} changed, same file {KEY.file_name}"
    assert replace(KEY).file_name == KEY.file_name
    assert re.fullmatch(r"schema-[0-9a-f]{32}\.json", KEY.file_name)


def test_a_saved_schema_reads_back(tmp_path: Path) -> None:
    path = tmp_path / KEY.file_name
    schema.save(path, KEY, introspection_of(TINY))
    loaded = schema.load(path, KEY)
    assert loaded is not None
    assert graphql.print_schema(loaded) == graphql.print_schema(TINY)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.file_name]  # no temporary left


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty", "not json", "another key", "not an introspection"],
)
def test_a_file_that_does_not_read_back_whole_is_dropped(tmp_path: Path, damage: str) -> None:
    path = tmp_path / KEY.file_name
    schema.save(path, KEY, introspection_of(TINY))
    whole = path.read_bytes()
    document = json.loads(whole)
    match damage:
        case "truncated":
            path.write_bytes(whole[: len(whole) // 2])
        case "empty":
            path.write_bytes(b"")
        case "not json":
            path.write_bytes(b"\x00\xff" * 10)
        case "another key":  # e.g. written for another engine version under this name
            document["key"]["engine"] = "v0.21.10"
            path.write_text(json.dumps(document))
        case "not an introspection":
            document["introspection"] = {"__schema": {"types": "none"}}
            path.write_text(json.dumps(document))
    assert schema.load(path, KEY) is None
    assert not path.exists()


def test_only_the_newest_files_are_kept(tmp_path: Path) -> None:
    keys = [replace(KEY, engine=f"v0.{n}.0") for n in range(schema.KEEP + 3)]
    for n, key in enumerate(keys):
        schema.save(tmp_path / key.file_name, key, introspection_of(TINY))
        os.utime(tmp_path / key.file_name, (1_000_000 + n, 1_000_000 + n))
    schema.save(tmp_path / KEY.file_name, KEY, introspection_of(TINY))
    left = {p.name for p in tmp_path.glob("schema-*.json")}
    want = {KEY.file_name} | {k.file_name for k in keys[-(schema.KEEP - 1) :]}
    assert left == want


def test_a_cache_that_cannot_be_written_fails_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory would be")
    path = blocked / KEY.file_name
    schema.save(path, KEY, introspection_of(TINY))
    assert schema.load(path, KEY) is None


def _builder_error(cause: BaseException | None) -> dagger.InvalidQueryError:
    error = dagger.InvalidQueryError("Failed to build GraphQL query")
    error.__cause__ = cause
    return error


def _query_error(code: str | None) -> dagger.QueryError:
    extensions = {"code": code} if code else {}
    return dagger.QueryError([QueryErrorValue("refused", extensions=extensions)], gql.gql("{ a }"))


@pytest.mark.parametrize(
    ("error", "want"),
    [
        (_builder_error(AttributeError("Field defaultPlatform does not exist")), True),
        (_builder_error(graphql.GraphQLError("Unknown type")), True),
        (_builder_error(None), False),  # "Required field got a null response"
        (_query_error("GRAPHQL_VALIDATION_FAILED"), True),  # as the engine refuses a field
        (_query_error(None), False),  # a failure while running the query
        (ValueError("other"), False),
    ],
)
def test_what_counts_as_a_stale_schema(error: BaseException, want: bool) -> None:
    assert schema.stale(error) is want, f"stale({error!r}): got {not want}, want {want}"


# --- against the engine ---------------------------------------------------------------------


class Requests:
    """The bodies of the HTTP requests this process sends (the SDK's and ours alike, the
    session child's first question, sent with http.client, too)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    @property
    def introspections(self) -> int:
        return sum(1 for body in self.bodies if INTROSPECTION_REQUEST.search(body))

    @property
    def key_queries(self) -> int:
        return sum(1 for body in self.bodies if b"__schemaJSONFile" in body)


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    seen = Requests()
    send = httpx.AsyncHTTPTransport.handle_async_request

    async def counted(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        seen.bodies.append(request.content)
        return await send(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", counted)
    request = http.client.HTTPConnection.request

    def counted_plain(
        self: http.client.HTTPConnection, method: str, url: str, body: Any = None, *args: Any
    ) -> None:
        seen.bodies.append(body.encode() if isinstance(body, str) else bytes(body or b""))
        request(self, method, url, body, *args)

    monkeypatch.setattr(http.client.HTTPConnection, "request", counted_plain)
    return seen


@pytest.fixture
def in_engine(engine_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process set up to reach the engine, with a cache directory of its own (given)."""
    for key, value in engine_env.items():
        if key.startswith(("DAGGER", "_EXPERIMENTAL_DAGGER", "PIPELINE_", "DO_NOT_TRACK")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pipeline"


def session(body: Callable[[], Awaitable[T]]) -> T:
    """`body` in a session opened as every run opens it (pipeline.engine.session.in_session)."""

    async def run(_: Session) -> T:
        return await body()

    return anyio.run(in_session, run, Settings(Variant.MULTISTAGE))


def saved(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in sorted(directory.glob("schema-*.json"))]


@pytest.mark.engine
def test_a_cache_hit_sends_no_introspection(in_engine: Path, requests: Requests) -> None:
    # The count sees the SDK's own introspection: one, on a connection without the cache.
    async def plain() -> str:
        async with dagger.connection(dagger.Config(log_output=None)):
            return await dag.version()

    assert anyio.run(plain).startswith("v")
    assert requests.introspections == 1, "the counter does not see the SDK's introspection"

    requests.bodies.clear()
    first = session(dag.version)
    assert requests.introspections == 1  # a miss: fetched once (by us), not by the SDK too
    assert len(saved(in_engine)) == 1

    requests.bodies.clear()
    second = session(dag.version)
    assert second == first
    assert requests.introspections == 0, "a cache hit sent an introspection query"
    assert requests.key_queries == 1
    assert saved(in_engine)[0]["key"]["engine"] == second


@pytest.mark.engine
def test_another_view_of_the_api_is_fetched_and_kept_beside(
    in_engine: Path, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    session(dag.version)
    (ours,) = (
        s["key"]["view"] for s in saved(in_engine)
    )  # the CLI's version, as the engine reads it
    assert ours != "v0.21.3"
    # A CLI of another version: the engine serves it another view of the API, another key.
    cli = os.environ["_EXPERIMENTAL_DAGGER_CLI_BIN"]
    child = subprocess.Popen(
        [cli, "session", "--version", "v0.21.3", "--label", "dagger.io/sdk.name:python"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        params = json.loads(child.stdout.readline())
        monkeypatch.setenv("DAGGER_SESSION_PORT", str(params["port"]))  # as `dagger run` does
        monkeypatch.setenv("DAGGER_SESSION_TOKEN", str(params["session_token"]))
        requests.bodies.clear()
        assert session(dag.version).startswith("v")
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert requests.introspections == 1
    views = sorted(s["key"]["view"] for s in saved(in_engine))
    assert views == sorted([ours, "v0.21.3"]), views
    digests = {s["key"]["digest"] for s in saved(in_engine)}
    assert len(digests) == 2


@pytest.mark.engine
def test_a_truncated_cache_file_is_fetched_again_and_the_build_succeeds(
    pipeline: PipelineRunner, tmp_path: Path
) -> None:
    cache = {"XDG_CACHE_HOME": str(tmp_path)}
    args = ("multistage", "--no-test", "--no-output", "--quiet")
    first = pipeline(*args, extra_env=cache)
    assert first.returncode == 0, first.stderr
    (path,) = (tmp_path / "pipeline").glob("schema-*.json")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])

    second = pipeline(*args, extra_env=cache)
    assert second.returncode == 0, second.stderr
    assert "Hello World" in second.stdout
    assert json.loads(path.read_bytes()) == json.loads(whole)


def _edit_query_fields(path: Path, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    """Change the fields of Query in the cached introspection at `path`, key unchanged."""
    document = json.loads(path.read_bytes())
    (query,) = (t for t in document["introspection"]["__schema"]["types"] if t["name"] == "Query")
    edit(query["fields"])
    path.write_text(json.dumps(document))


def _query_fields(path: Path) -> set[str]:
    document = json.loads(path.read_bytes())
    (query,) = (t for t in document["introspection"]["__schema"]["types"] if t["name"] == "Query")
    return {f["name"] for f in query["fields"]}


@pytest.mark.engine
def test_a_cached_schema_that_lacks_a_field_is_fetched_again(
    in_engine: Path, requests: Requests, caplog: pytest.LogCaptureFixture
) -> None:
    session(dag.version)
    (path,) = in_engine.glob("schema-*.json")

    def drop_default_platform(fields: list[dict[str, Any]]) -> None:
        fields.remove(next(f for f in fields if f["name"] == "defaultPlatform"))

    _edit_query_fields(path, drop_default_platform)
    assert "defaultPlatform" not in _query_fields(path)

    requests.bodies.clear()
    # in_session asks dag.default_platform() first: built from the stale schema, it fails in
    # the SDK's query builder; the schema is fetched again and the query sent again.
    platform = session(dag.default_platform)
    assert str(platform).startswith("linux/")
    assert requests.introspections == 1
    assert "defaultPlatform" in _query_fields(path)
    # The SDK's log of its builder's failure (a traceback on stderr) is not shown: answered.
    assert [r.getMessage() for r in caplog.records if r.name == _core.__name__] == []


@pytest.mark.engine
def test_a_cached_field_the_engine_does_not_have_is_fetched_again(
    in_engine: Path, requests: Requests
) -> None:
    session(dag.version)
    (path,) = in_engine.glob("schema-*.json")

    def add_unknown(fields: list[dict[str, Any]]) -> None:
        version = next(f for f in fields if f["name"] == "version")
        fields.append({**version, "name": "pipelineNoSuchField"})

    _edit_query_fields(path, add_unknown)

    async def ask_the_unknown_field() -> str:
        # The query the SDK builds for a field of the cached schema the engine does not have
        # (Query.version's shape under another name): the engine refuses it in validation.
        return await dag._ctx.select("Query", "pipelineNoSuchField", []).execute(str)

    requests.bodies.clear()
    # Fetched again and built again: now the SDK's query builder finds no such field.
    with pytest.raises(PipelineError, match="Failed to build GraphQL query"):
        session(ask_the_unknown_field)
    assert requests.introspections == 1
    assert "pipelineNoSuchField" not in _query_fields(path)
