"""A lean HTTP/1.1 keep-alive client for the load phases: the benchmarks share the machine's two
cores with the servers they measure, and httpx costs about 2.3-2.8 ms of client CPU per request
here (measured at 100-300 requests/s against /healthz), more than the server's /healthz itself.

`Pool` keeps up to `size` connections to one host, each carrying one request at a time; requests are
pre-built bytes (`Request`), answers are (status, body) once the whole body is in. Only what our
servers send is understood: a status line, headers and a Content-Length body (no chunking)."""

import asyncio
import time
from collections import deque

IDLE_LIMIT = 3.0  # seconds; uvicorn closes a keep-alive connection idle for 5 s (timeout_keep_alive)


class Request:
    """The bytes of one request, built once and sent as often as needed."""

    def __init__(
        self,
        method: str,
        path: str,
        host: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str = "application/json",
    ) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        self.data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn(asyncio.Protocol):
    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.start = 0
        self.need = -1  # the whole answer's length once its headers are in
        self.status = 0
        self.alive = True
        self.idle_since = time.monotonic()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed ({exc or 'by the server'})"))

    def send(self, data: bytes, waiter: asyncio.Future) -> None:
        self.waiter, self.need = waiter, -1
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail(ConnectionError("an answer without Content-Length"))
                return
            stop = head.find(b"\r\n", at + 2)
            self.start = end + 4
            self.need = self.start + int(head[at + 17 : stop if stop > 0 else len(head)])
        if len(buf) < self.need:
            return
        body = bytes(buf[self.start : self.need])
        del buf[: self.need]
        self.need = -1
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, body))

    def _fail(self, exc: Exception) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.transport.close()


class Pool:
    """Up to `size` keep-alive connections to host:port; `request` waits for a free one."""

    def __init__(self, host: str, size: int) -> None:
        self.address = host.rsplit(":", 1)
        self.size = size
        self._idle: deque[_Conn] = deque()
        self._open = 0
        self._waiting: deque[asyncio.Future] = deque()

    async def warm(self, n: int | None = None) -> "Pool":
        """Open connections ahead of the timed phase (connecting costs more than a request); those
        left idle for IDLE_LIMIT are dropped before the server's keep-alive timeout closes them."""
        conns = await asyncio.gather(*(self._connect() for _ in range(min(n or self.size, self.size))))
        self._idle.extend(conns)  # opened at once, so that the workers of a node all accept some of them
        return self

    async def _connect(self) -> _Conn:
        self._open += 1
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Conn(self), self.address[0], int(self.address[1])
            )
        except BaseException:
            self._open -= 1
            raise
        return conn

    async def _acquire(self) -> _Conn:
        """The connection idle the longest (round robin, like many clients each with a connection of
        its own: a node's workers get the requests in the proportion they accepted the connections);
        one idle for IDLE_LIMIT is dropped before the server's keep-alive timeout closes it."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.popleft()
            if conn.alive and now - conn.idle_since < IDLE_LIMIT:
                return conn
            self._drop(conn)
        if self._open < self.size:
            return await self._connect()
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return await waiter

    def _release(self, conn: _Conn) -> None:
        if not conn.alive:
            self._open -= 1
            if self._waiting:  # let a waiter open a fresh connection
                w = self._waiting.popleft()
                asyncio.ensure_future(self._hand_fresh(w))
            return
        while self._waiting:
            w = self._waiting.popleft()
            if not w.done():
                w.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _drop(self, conn: _Conn) -> None:
        conn.alive = False
        if conn.transport is not None:
            conn.transport.close()
        self._open -= 1

    async def _hand_fresh(self, waiter: asyncio.Future) -> None:
        try:
            conn = await self._connect()
        except Exception as exc:
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter.done():
            self._release(conn)
        else:
            waiter.set_result(conn)

    async def request(self, req: Request, timeout: float = 10.0) -> tuple[int, bytes]:
        """(status, body); raises TimeoutError or ConnectionError. A timed-out connection is dropped."""
        conn = await self._acquire()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        conn.send(req.data, waiter)
        try:
            return await waiter
        except BaseException:
            conn.alive = False
            if conn.transport is not None:
                conn.transport.close()
            raise
        finally:
            timer.cancel()
            self._release(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.alive = False
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer in time"))
