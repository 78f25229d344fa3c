"""The engine's GraphQL schema, kept between runs, so that connecting costs milliseconds.

On connect the Dagger SDK (dagger-io 0.21.11) fetches the engine's whole schema by
introspection (`__schema`), which the engine builds anew on every call: about 0.3 s of every
one-shot run, for a schema the SDK uses only to build its queries. `cached()`, opened between
the session and `dagger.connection()`, asks the engine instead what it serves, in one query of
a few milliseconds (KEY_QUERY): its version, the view of the API its client (the CLI) gets
(`__schemaVersion`, the CLI's version as the engine reads it), and the digest of that schema
(`__schemaJSONFile`, which the engine keeps per schema). With the versions of the libraries
that read it (dagger-io, gql, graphql-core), that is the key of a file in the user's cache
directory (`$XDG_CACHE_HOME/pipeline/schema-<key>.json`, else `~/.cache/pipeline/…`) holding
the introspection result. On a miss, or a file that does not read back whole, the result is
fetched once with the query the SDK would send, and saved (whole or not at all).

The hook, while `cached()` is open: `dagger.client._session` makes its gql client through
the name `GraphQLClient`; that name gives the client the schema (`schema=`,
`fetch_schema_from_transport=False`), so the SDK sends no introspection; the name
`TelemetryTransport` gives it its HTTP transport without a TLS context (the session is plain
HTTP on 127.0.0.1; loading the CA bundle alone costs 40 ms). And
`dagger.client._core.Context.execute`, through which every query of the SDK passes, is
wrapped: should a query built from a cached schema be refused as not matching the engine's
(by the query builder, or by the engine's validation), the schema is fetched anew, saved,
and the query built and sent again, once. So a stale file costs a refetch, never a build.

Nothing here fails a run: an engine that does not answer the key query (or no session to
ask, when the SDK provisions its own), or a cache directory that cannot be written, leaves
the SDK to fetch the schema as it always does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import anyio
import gql
import graphql
import httpx
from dagger import ClientConnectionError, InvalidQueryError, QueryError
from dagger.client import _core, _session
from gql.utilities import get_introspection_query_ast
from graphql.utilities import IntrospectionQuery

from pipeline.engine.provision import ENGINE_QUERY
from pipeline.errors import OutputError
from pipeline.outputs import cache_home, keep_newest, write_text

SDK_VERSION = "0.21.11"  # the dagger-io whose hook this is written for (tests/test_schema.py)
CLIENT_NAME = "GraphQLClient"  # the name dagger.client._session makes its gql client by
TRANSPORT_NAME = "TelemetryTransport"  # ... and its HTTP transport (httpx) by
KEY_QUERY = ENGINE_QUERY  # the session child asks it once up (pipeline.engine.provision)
# What the SDK sends (gql's query with its default arguments, as the SDK passes none).
INTROSPECTION = graphql.print_ast(get_introspection_query_ast())
ASK_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
KEEP = 8  # cache files kept (the newest): one per engine, CLI and library versions in use


@dataclass(frozen=True)
class Key:
    """What the introspection result depends on: the engine's schema and its readers."""

    engine: str  # the engine's version
    view: str  # __schemaVersion: the API view the client's (the CLI's) version selects
    digest: str  # of the schema served, as the engine computes it
    dagger_io: str
    gql: str
    graphql_core: str

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Key:
        """The key for the engine's answer to KEY_QUERY and the libraries installed here."""
        return cls(
            engine=str(answer["version"]),
            view=str(answer["__schemaVersion"]),
            digest=str(answer["__schemaJSONFile"]["digest"]),
            dagger_io=metadata.version("dagger-io"),
            gql=metadata.version("gql"),
            graphql_core=metadata.version("graphql-core"),
        )

    @property
    def file_name(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return f"schema-{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"


def load(path: Path, key: Key) -> graphql.GraphQLSchema | None:
    """The schema saved at `path` for `key`; None if there is none, or it does not read back
    whole (then the file is removed)."""
    try:
        saved = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # unreadable, truncated, not JSON
        saved = None
    try:
        if isinstance(saved, dict) and saved.get("key") == asdict(key):
            return graphql.build_client_schema(saved["introspection"])
    except (KeyError, TypeError, ValueError, graphql.GraphQLError):
        pass  # parsed, but not an introspection result: fetched again below
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    return None


def save(path: Path, key: Key, introspection: Mapping[str, Any]) -> None:
    """Keep `introspection` at `path` (whole or not at all), and only the KEEP newest files.
    A cache that cannot be written costs the next run a fetch, not this one its build."""
    document = {"key": asdict(key), "introspection": introspection}
    with contextlib.suppress(OutputError):
        write_text(path, json.dumps(document, separators=(",", ":")))
    keep_newest(path.parent.glob("schema-*.json"), KEEP)


async def _ask(params: _session.ConnectParams, query: str) -> dict[str, Any] | None:
    """The data of the engine's answer to `query` in this session; None if it gave none."""
    try:
        # The session answers plain HTTP on 127.0.0.1 (ConnectParams.url): no TLS, so no CA
        # bundle to load (that alone costs 50 ms and more).
        async with httpx.AsyncClient(
            auth=(params.session_token, ""), timeout=ASK_TIMEOUT, verify=False
        ) as http:
            response = await http.post(params.url, json={"query": query})
        response.raise_for_status()
        answer = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    data = answer.get("data") if isinstance(answer, dict) else None
    return data if isinstance(data, dict) and not answer.get("errors") else None


async def _fetch(
    params: _session.ConnectParams,
) -> tuple[dict[str, Any], graphql.GraphQLSchema] | None:
    """The introspection result, as the SDK would fetch it, and its schema; None if the
    engine gave none that builds."""
    introspection = await _ask(params, INTROSPECTION)
    if introspection is None:
        return None
    try:
        return introspection, graphql.build_client_schema(cast(IntrospectionQuery, introspection))
    except (KeyError, TypeError, graphql.GraphQLError):
        return None


@dataclass
class Entry:
    """The schema handed to the SDK's clients while `cached()` is open."""

    schema: graphql.GraphQLSchema
    cached: bool  # read from the cache file (not fetched in this run)
    params: _session.ConnectParams
    path: Path
    key: Key
    clients: list[gql.Client] = field(default_factory=list)
    refetched: int = 0
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def refetch(self, seen: int) -> bool:
        """After a query built from the cached schema was refused: fetch it anew (once, whatever
        the number of queries refused at once), save it and give it to the clients. True if
        the query is to be tried again (a schema newer than the one it was built from)."""
        async with self.lock:
            if self.refetched == seen and self.cached:
                fetched = await _fetch(self.params)
                if fetched is None:
                    return False
                introspection, self.schema = fetched
                save(self.path, self.key, introspection)
                for client in self.clients:
                    client.schema = self.schema
                self.cached = False
                self.refetched += 1
        return self.refetched != seen


async def prepare(
    params: _session.ConnectParams | None,
    directory: Path,
    answer: Mapping[str, Any] | None = None,
) -> Entry | None:
    """The engine's schema for this session, from the cache (the key checked with the
    engine: `answer` to KEY_QUERY, asked here if not given) or fetched and saved; None where
    the engine does not say what it serves."""
    if params is None:
        return None
    if answer is None:
        answer = await _ask(params, KEY_QUERY)
    try:
        key = Key.of(answer) if answer is not None else None
    except (KeyError, TypeError):
        key = None
    if key is None:
        return None
    path = directory / key.file_name
    schema = load(path, key)
    if schema is not None:
        return Entry(schema, cached=True, params=params, path=path, key=key)
    fetched = await _fetch(params)
    if fetched is None:
        return None
    save(path, key, fetched[0])
    return Entry(fetched[1], cached=False, params=params, path=path, key=key)


def stale(err: BaseException) -> bool:
    """Whether `err` is a query refused as not matching the schema: by the SDK's query
    builder (a field or type the schema lacks), or by the engine's validation."""
    if isinstance(err, InvalidQueryError):
        # The builder's failure carries its cause; a null result (also InvalidQueryError)
        # does not.
        return isinstance(err.__cause__, graphql.GraphQLError | AttributeError | TypeError)
    if isinstance(err, QueryError):
        return any(e.extensions.get("code") == "GRAPHQL_VALIDATION_FAILED" for e in err.errors)
    return False


@contextlib.contextmanager
def hooked(schema: Entry) -> Iterator[None]:
    """While open, the SDK's gql clients get `schema` instead of fetching one (and a transport
    without TLS), and a query built from a stale cached schema is built and sent again with a
    fresh one."""
    make_client: type[gql.Client] = getattr(_session, CLIENT_NAME)
    execute = _core.Context.execute

    def client(**kwargs: Any) -> gql.Client:
        kwargs.update(schema=schema.schema, fetch_schema_from_transport=False)
        made = make_client(**kwargs)
        schema.clients.append(made)
        return made

    async def execute_fresh(self: _core.Context, return_type: Any = None) -> Any:
        seen = schema.refetched
        try:
            return await execute(self, return_type)
        except (InvalidQueryError, QueryError) as err:
            if not (stale(err) and await schema.refetch(seen)):
                raise
        return await execute(self, return_type)

    def quiet(record: logging.LogRecord) -> bool:
        # The SDK logs its query builder's failure with a traceback; from a cached schema
        # that failure is answered here (fetched again, built again), so it is not shown.
        return not (schema.cached and record.levelno >= logging.ERROR)

    make_transport: type[httpx.AsyncHTTPTransport] = getattr(_session, TRANSPORT_NAME)

    def transport(**kwargs: Any) -> httpx.AsyncHTTPTransport:
        # The session answers plain HTTP on 127.0.0.1 (ConnectParams.url): no TLS context
        # with the CA bundle loaded, which costs 40 ms and more, for a connection without TLS.
        return make_transport(**{"verify": False, **kwargs})

    sdk_log = logging.getLogger(_core.__name__)
    setattr(_session, CLIENT_NAME, client)
    setattr(_session, TRANSPORT_NAME, transport)
    _core.Context.execute = execute_fresh  # type: ignore[method-assign]
    sdk_log.addFilter(quiet)
    try:
        yield
    finally:
        sdk_log.removeFilter(quiet)
        setattr(_session, CLIENT_NAME, make_client)
        setattr(_session, TRANSPORT_NAME, make_transport)
        _core.Context.execute = execute  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def cached(
    env: Mapping[str, str] = os.environ, answer: Mapping[str, Any] | None = None
) -> AsyncIterator[Entry | None]:
    """Open between the session and `dagger.connection()`: the connection built inside uses
    the engine's schema from the cache (or fetched once and saved). `answer`: the engine's
    answer to KEY_QUERY in this session, if the session child already asked. Yields what it
    handed over (None: the SDK fetches the schema itself)."""
    try:
        params = _session.ConnectParams.from_env()
        directory = cache_home(env)
    except (ClientConnectionError, RuntimeError):  # a bad session port; no home directory
        params = None
        directory = Path()
    schema = await prepare(params, directory, answer)
    if schema is None:
        yield None
        return
    with hooked(schema):
        yield schema
