"""Which errors are the stores' faults (503 unavailable, with Retry-After) and which stay bugs (500,
logged with their traceback): the mapping in api.errors, and its rendering in a running app."""

import logging

import httpx
import pytest
from fastapi import Depends
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa
from sqlalchemy import text

from api.db import get_session
from api.errors import unavailable


class DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def dbapi(cls=sa.DBAPIError, sqlstate: str | None = None, *, invalidated: bool = False, message: str = "x"):
    return cls("SELECT 1", {}, DriverError(message, sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc",
    [
        sa.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
        dbapi(sa.InterfaceError, invalidated=True, message="connection is closed"),
        dbapi(sqlstate="08003"),  # connection does not exist (closed in the middle of an operation)
        dbapi(
            sa.OperationalError, sqlstate="08001"
        ),  # could not connect (api.db translates a refused connect to it)
        dbapi(sqlstate="57P01"),  # admin shutdown: the backend was terminated
        dbapi(sqlstate="57014"),  # query cancelled
        dbapi(sqlstate="53300"),  # too many clients
        dbapi(sqlstate="40P01"),  # deadlock detected: rolled back whole, a retry succeeds
        dbapi(sqlstate="40001"),  # serialization failure: the same
        dbapi(sa.OperationalError, message="database is locked"),  # SQLite past its busy timeout
        redis_errors.ConnectionError("Error 111 connecting"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    ],
    ids=lambda e: f"{type(e).__name__}:{getattr(getattr(e, 'orig', None), 'sqlstate', None) or str(e)[:20]}",
)
def test_store_faults_are_503_with_retry_after(exc):
    answer = unavailable(exc)
    assert answer is not None and answer.status == 503 and answer.code == "unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "exc",
    [
        dbapi(sa.IntegrityError, sqlstate="23505"),  # a unique violation: the request's (or our) fault
        dbapi(sa.ProgrammingError, sqlstate="42P01"),  # undefined table: a bug
        dbapi(sa.OperationalError, message="no such table: consults"),  # the same on SQLite
        dbapi(
            sa.InternalError, message="cannot perform operation: another operation is in progress"
        ),  # on a live connection
        sa.InvalidRequestError("This session is in 'prepared' state"),
        redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ConnectionRefusedError(111, "refused"),  # not from a store of ours (a store's is translated first)
        ValueError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_anything_else_is_not_a_store_fault(exc):
    assert unavailable(exc) is None


async def test_a_bug_in_sql_is_still_a_logged_500(app, caplog):
    async def broken(session=Depends(get_session)):
        await session.execute(text("SELECT * FROM no_such_table"))

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="liaison.errors"):
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as c:
            resp = await c.get("/broken")
    assert resp.status_code == 500 and resp.json()["code"] == "internal_error"
    assert any(r.exc_info for r in caplog.records if "unhandled error" in r.getMessage())
