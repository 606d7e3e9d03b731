"""Domain errors and their single rendering as RFC 9457 problem+json."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("liaison.errors")
PROBLEM = "application/problem+json"


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
    status, code, title = 503, "unavailable", "Service unavailable"


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
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(400, "malformed_json", "Malformed JSON", "The request body is not valid JSON")
    return problem(422, "validation_error", "Invalid input", "The request does not match the schema", errors=errors)


def _slim(err: dict) -> dict:
    # Echoing the rejected input back could reflect a huge body or clinical text.
    return {"loc": list(err.get("loc", ())), "type": err.get("type", ""), "msg": err.get("msg", "")}


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # FastAPI's own body parsing gave up (nesting too deep, a number too long to convert, bad encoding):
        # the same answer as any other unparsable JSON, not an ad-hoc code.
        return problem(400, "malformed_json", "Malformed JSON", "The request body is not valid JSON")
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    resp = problem(exc.status_code, code, str(exc.detail), str(exc.detail))
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
