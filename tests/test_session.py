"""pipeline.engine.session, without the engine: the retry when a file changes during the source
upload, with the error the engine gives then, and that error as one line."""

from __future__ import annotations

import anyio
import dagger
import gql
import pytest
from dagger._exceptions import QueryErrorValue

from pipeline.engine import session
from pipeline.settings import Settings, Variant

# What the engine answered when a test's file was rewritten during the source upload.
CHANGED = (
    'failed to get snapshot: failed to snapshot: failed to sync: conflict at "stamp.txt": '
    'mod time changed from "1795846671705805334" to "1795846671727578824" during sync'
)


def query_error(message: str) -> dagger.QueryError:
    return dagger.QueryError([QueryErrorValue(message)], gql.GraphQLRequest("{ container }"))


@pytest.mark.parametrize(
    ("failures", "message", "tries", "succeeds"),
    [
        (1, CHANGED, 2, True),  # changed once: read again, built
        (2, CHANGED, 3, True),
        (3, CHANGED, 3, False),  # kept changing: the third failure is the answer
        (1, "image not found", 1, False),  # any other error: at once
    ],
)
def test_uploading_reads_the_tree_again_when_a_file_changed_during_upload(
    failures: int, message: str, tries: int, succeeds: bool
) -> None:
    reloads: list[bool] = []

    async def attempt(settings: Settings) -> str:
        reloads.append(settings.reload_source)
        if len(reloads) <= failures:
            raise ExceptionGroup("build", [query_error(message)])  # as _sync_all raises it
        return "built"

    settings = Settings(Variant.MULTISTAGE)
    if succeeds:
        assert anyio.run(session.uploading, attempt, settings) == "built"
    else:
        with pytest.raises(ExceptionGroup):
            anyio.run(session.uploading, attempt, settings)
    assert reloads == [False] + [True] * (tries - 1)


def test_a_file_that_kept_changing_is_one_line() -> None:
    error = session.query_failed(query_error(CHANGED), Settings(Variant.MULTISTAGE))
    assert str(error) == (
        "stamp.txt kept changing while the source was uploaded (3 tries): run again once the "
        "tree is still"
    )


def test_a_session_that_stops_answering_is_the_engine_gone() -> None:
    """What the SDK raises when `dagger run`'s session answers 502 (its engine killed): gql's
    transport error, retried, then tenacity's RetryError around it. One line, EngineGone
    (which ends a `dagger run` above us), whether alone or in a task group."""
    from gql.transport.exceptions import TransportServerError
    from tenacity import Future, RetryError

    from pipeline.errors import EngineGone

    answered = TransportServerError("Server error '502 Bad Gateway' for url 'http://x/query'")
    attempt = Future(1)
    attempt.set_exception(answered)
    retried = RetryError(attempt)
    retried.__cause__ = answered
    settings = Settings(variant=Variant.MULTISTAGE)
    for raised in (retried, ExceptionGroup("group", [retried]), answered):
        gone = session.translate(raised, settings)
        assert isinstance(gone, EngineGone), raised
        assert str(gone).startswith(
            "the Dagger session stopped answering (Server error '502 Bad Gateway'"
        ), str(gone)
        assert "\n" not in str(gone)
