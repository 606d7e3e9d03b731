"""The signaling socket on its own port (LIAISON_SIGNALING_PORT), served by `websockets` inside the
API's process, so it stays one process and one command and shares the pre-call echo peers and the
close orders with the API.

Measured with `make bench` (5 000 idle joined connections; candidate-sized relays): on this port a
waiting connection costs 14.7 KiB, as much as a bare `websockets` relay's, against 35.4 KiB on the
API's ASGI route (the uvicorn/Starlette layers); a relayed message costs about 17 µs of CPU here and
16 µs there. Signaling is mostly connections waiting for a call, so deployments with many clients
should use this port; the embedded default keeps everything on the API's one port."""

import asyncio
from http import HTTPStatus
from typing import cast

from starlette.websockets import WebSocketDisconnect, WebSocketState
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from api.logs import token_in_query

PATHS = ("/", "/api/v1/signaling")
_KEEPALIVE: dict[Server, asyncio.Task[None]] = {}  # each listener's ping task (Server has no slot for one)


class Socket:
    """The part of Starlette's WebSocket that SignalingServer uses, over a `websockets` connection."""

    __slots__ = ("_conn", "headers", "application_state", "recv")

    def __init__(self, conn: ServerConnection) -> None:
        self._conn = conn
        assert conn.request is not None  # handlers are given connections past their handshake
        self.headers = conn.request.headers
        self.application_state = WebSocketState.CONNECTED
        self.recv = conn.recv  # the server awaits it directly and knows ConnectionClosed (see `start`)

    async def accept(self) -> None:
        return None  # the handshake is done by the time the handler runs

    async def receive(self) -> dict:
        try:
            data = await self._conn.recv()
        except ConnectionClosed as closed:
            self.application_state = WebSocketState.DISCONNECTED
            return {"type": "websocket.disconnect", "code": closed.rcvd.code if closed.rcvd else 1006}
        return (
            {"type": "websocket.receive", "text": data}
            if isinstance(data, str)
            else {"type": "websocket.receive", "bytes": data}
        )

    async def send_text(self, data: str) -> None:
        try:
            await self._conn.send(data)
        except ConnectionClosed:
            self.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(1006) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.application_state = WebSocketState.DISCONNECTED
        await self._conn.close(code, reason)


async def start(server, *, host: str, port: int) -> Server:
    """Listen for signaling on host:port; several workers of one node may share the port."""
    settings = server.s

    def admit(conn: ServerConnection, request: Request) -> Response | None:
        # Refused before the handshake, as the ASGI route does: the browser sees HTTP 403.
        path, _, query = request.path.partition("?")
        if path not in PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        if token_in_query(query):
            return conn.respond(
                HTTPStatus.FORBIDDEN, "Tokens are sent in the first message, never in the URL\n"
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin not in settings.allowed_origins:
            return conn.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        return None

    def handler(conn: ServerConnection):
        # The server's own coroutine is the connection's handler: no wrapper frame per connection.
        return server.handle(Socket(conn))

    server.disconnects += (ConnectionClosed,)
    # Keepalive pings come from one task for all connections, not a task per connection (2 KiB each).
    listener = await serve(
        handler,
        host,
        port,
        process_request=admit,
        compression=None,
        max_size=settings.signaling_max_message_bytes,
        ping_interval=None,
        reuse_port=True,
        server_header=None,
    )
    _KEEPALIVE[listener] = asyncio.create_task(
        _keepalive(listener, settings.signaling_ping_interval, settings.signaling_ping_timeout),
        name="signaling-keepalive",
    )
    return listener


async def _keepalive(listener: Server, every: float, timeout: float) -> None:
    """Ping every connection each round; one that has not answered within `timeout` is cut off, as
    its close handshake would wait on a peer that no longer answers (its server sees code 1006)."""
    while True:
        waiting: dict[ServerConnection, asyncio.Future] = {}
        for conn in list(listener.connections):
            try:
                # Typed as an awaitable; it is the pong's Future, which is polled (not awaited) above.
                waiting[conn] = cast("asyncio.Future[float]", await conn.ping())
            except ConnectionClosed:
                continue
        await asyncio.sleep(timeout)
        for conn, pong in waiting.items():
            if not pong.done() and conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(max(0.0, every - timeout))


async def stop(listener: Server | None) -> None:
    if listener is not None:
        _KEEPALIVE.pop(listener).cancel()
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), 10)
