"""Pure-ASGI middleware: request ids, body size cap, request metrics, no tokens in socket URLs."""

import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.logs import token_in_query

REQUESTS = Counter("liaison_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "liaison_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
API_PREFIX = "/api/v1"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (the client's if it is sane) and caps the body size."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, large_bodies: tuple[re.Pattern[str], int] | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.large = large_bodies  # (paths, their cap): routes that stream their bodies to a store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = rid if _SAFE_ID.match(rid) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        cap = self.large[1] if self.large and self.large[0].match(scope["path"]) else self.max_body
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            resp = problem(413, "body_too_large", "Body too large", f"Bodies are limited to {cap} bytes")
            return await resp(scope, receive, send)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        await self.app(scope, self._capped(receive, cap), send_with_id)

    def _capped(self, receive: Receive, cap: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > cap:
                raise HTTPException(413, "Body too large")
            return message

        return wrapped


class MetricsMiddleware:
    """Counts requests and times them by route template, so ids do not explode label sets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            # Included routers report their own path; every router of ours is mounted under /api/v1.
            route = (
                "unmatched"
                if route is None
                else (API_PREFIX + route if scope["path"].startswith(API_PREFIX) else route)
            )
            REQUESTS.labels(scope["method"], route, str(status[0])).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - start)


class QueryTokenGuard:
    """Refuses, with HTTP 403 before the upgrade, a WebSocket handshake whose query string carries a
    token: tokens travel in the first message only, since URLs end up in logs and proxies' records."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or not token_in_query(
            scope.get("query_string", b"").decode("latin-1")
        ):
            return await self.app(scope, receive, send)
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            return await send({"type": "websocket.close", "code": 1008})  # the server answers 403
        body = b"Tokens are sent in the first message, never in the URL\n"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
