"""Domain errors and their single rendering as RFC 9457 problem+json."""

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketState

from api.metrics import STORE_ERRORS

log = logging.getLogger("liaison.errors")
PROBLEM = "application/problem+json"
E = TypeVar("E", bound=Exception)


class DomainError(Exception):
    """Base of every error a service raises; subclasses fix status, code and title."""

    status = 400
    code = "bad_request"
    title = "Bad request"
    denial = False  # an authorization refusal, audited when rendered

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidInput(DomainError):
    status, code, title = 422, "invalid_input", "Invalid input"


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unavailable(DomainError):
    """A store (the database, Redis) can't serve the request now; clients retry after `retry_after` s."""

    status, code, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class ClientGone(DomainError):
    """The client closed its connection while its request waited: nothing of it was done."""

    status, code, title = 499, "client_closed_request", "Client closed request"


class TooManyRequests(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail or "Too many attempts; try again later")
        self.headers = {"Retry-After": str(max(1, retry_after))}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{code}", "title": title, "status": status, "detail": detail, "code": code}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def _domain(request: Request, exc: DomainError) -> JSONResponse:
    if exc.denial and (hook := getattr(request.app.state, "on_denial", None)):
        await hook(request, exc)
    resp = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    resp.headers.update(exc.headers)
    return resp


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_slim(e) for e in exc.errors()]
    types = {e["type"] for e in errors}
    if "json_invalid" in types:
        return problem(400, "malformed_json", "Malformed JSON", "The request body is not valid JSON")
    # Stable codes of their own for what the shared request check (api.schemas.Strict) refuses.
    for code, title in (
        ("unstorable_character", "Text holds a character that cannot be stored"),
        ("nesting_too_deep", "Nested too deeply"),
    ):
        if code in types:
            return problem(422, code, title, "The request does not match the schema", errors=errors)
    return problem(
        422, "validation_error", "Invalid input", "The request does not match the schema", errors=errors
    )


def _slim(err: dict[str, Any]) -> dict[str, Any]:
    # Echoing the rejected input back could reflect a huge body or clinical text.
    return {"loc": list(err.get("loc", ())), "type": err.get("type", ""), "msg": err.get("msg", "")}


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__context__, RecursionError):
        # The parser ran out of stack before api.schemas.Strict could count the levels: the same
        # answer as Strict's, whatever depth the server's own stack allowed this time.
        return problem(422, "nesting_too_deep", "Nested too deeply", "The request does not match the schema")
    if exc.status_code == 400:
        # FastAPI's own body parsing gave up (nesting too deep, a number too long to convert, bad encoding):
        # the same answer as any other unparsable JSON, not an ad-hoc code.
        return problem(400, "malformed_json", "Malformed JSON", "The request body is not valid JSON")
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
    }
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    resp = problem(exc.status_code, code, str(exc.detail), str(exc.detail))
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


# SQLSTATE classes of a database that is unreachable or went away rather than of a wrong request:
# 08 connection exception (08001 is also ours for a refused connect: api.db), 53 insufficient resources
# (53300 too many connections), 57 operator intervention (57P01 backend terminated, 57014 cancelled).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57")
# A deadlock or serialization failure rolled the whole transaction back: nothing was written, and the
# same request is expected to succeed when tried again.
_RETRY_SQLSTATES = ("40001", "40P01")
CLOSE_TRY_AGAIN = 1013  # WebSocket close code "Try Again Later"


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 answering a fault of the database or Redis; None for anything else (a logged 500)."""
    if isinstance(exc, sa.TimeoutError):  # the pool: every connection busy past db_pool_timeout
        return Unavailable("The database is busy; try again shortly", store="database")
    if isinstance(exc, sa.DBAPIError) and _database_fault(exc):
        return Unavailable("The database is not answering; try again shortly", store="database")
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return Unavailable("Redis is not answering; try again shortly", store="redis")
    return None


def _database_fault(exc: sa.DBAPIError) -> bool:
    if exc.connection_invalidated:  # SQLAlchemy saw the connection die (terminated, reset, closed)
        return True
    state = getattr(exc.orig, "sqlstate", None) or ""
    if state[:2] in _UNAVAILABLE_SQLSTATES or state in _RETRY_SQLSTATES:
        return True
    return isinstance(exc, sa.OperationalError) and "database is locked" in str(
        exc.orig
    )  # SQLite, past its busy timeout


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed step: a store fault as one warning line, anything else with its traceback."""
    # A store fault is expected while the store is down, and retried: a traceback each time says nothing.
    if (answer := unavailable(exc)) is not None:
        STORE_ERRORS.labels(answer.extra["store"]).inc()
        logger.warning("%s: the %s is not answering: %s", what, answer.extra["store"], _said(exc))
    else:
        logger.error("%s", what, exc_info=exc)


async def _store_fault(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    answer = unavailable(exc)
    if answer is None:
        raise exc  # on to the 500 handler, which logs it with its traceback
    STORE_ERRORS.labels(answer.extra["store"]).inc()
    log.warning(
        "%s %s: the %s is not answering: %s",
        getattr(conn, "method", "WEBSOCKET"),
        conn.url.path,
        answer.extra["store"],
        _said(exc),
    )
    if isinstance(conn, WebSocket):
        await close_unavailable(conn, answer)
        return None
    return await _domain(conn, answer)  # type: ignore[arg-type]


def _said(exc: BaseException) -> str:
    """One line of what failed: the driver's own words where there are some (no SQL, no parameters)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return f"{type(inner).__name__}: {text.splitlines()[0][:200] if text else ''}"


async def close_unavailable(ws: WebSocket, answer: Unavailable) -> None:
    """An `error` message (once accepted), then close 1013 Try Again Later."""
    with contextlib.suppress(Exception):
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.send_json({"type": "error", "code": answer.code, "message": answer.detail})
        await ws.close(CLOSE_TRY_AGAIN)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    _on(app, DomainError, _domain)
    _on(app, RequestValidationError, _validation)
    _on(app, StarletteHTTPException, _http)
    for fault in (sa.DBAPIError, sa.TimeoutError, RedisConnectionError, RedisTimeoutError):
        _on(app, fault, _store_fault)
    _on(app, Exception, _unexpected)


def _on(app: FastAPI, kind: type[E], handler: Callable[[Any, E], Awaitable[JSONResponse | None]]) -> None:
    # Starlette types every handler as taking any Exception, though it only ever passes it `kind`.
    app.add_exception_handler(kind, cast(Any, handler))
