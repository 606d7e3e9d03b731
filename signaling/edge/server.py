"""The signaling WebSocket: the one class that owns sockets. What it decides, it asks of the core
(signaling.core: parsing, rooms, join admission) and of the fabric for the other nodes; it only
moves bytes and keeps time. Its parts: the shared links (`links.py`), the way in (`seating.py`:
join, resume), close orders (`closing.py`); here the connection's life and its message loop."""

import asyncio
import contextlib
import functools
import time
from typing import Any

from fastapi import WebSocket

from api.metrics import SIGNALING_PEERS, SIGNALING_ROOMS
from api.tasks import cancel
from signaling.core.limits import Bucket
from signaling.core.messages import Leave, Ping, ProtocolError, Relay, parse
from signaling.core.rooms import Peer, connected
from signaling.edge.closing import Closing
from signaling.edge.links import (
    CLOSE_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    RELAYED,
    close_code,
    error_frame,
)
from signaling.edge.seating import Seating


async def collect(state: Any) -> None:
    """Rooms and peers this process holds, for /metrics (api.metrics.on_scrape)."""
    server = getattr(state, "signaling", None)  # absent outside the app's lifespan
    rooms = server.rooms.rooms if server is not None else {}
    SIGNALING_ROOMS.set(sum(1 for peers in rooms.values() if peers))
    SIGNALING_PEERS.set(sum(len(peers) for peers in rooms.values()))


class SignalingServer(Seating, Closing):
    """This node's signaling: its rooms, its sockets, and the fabric to the other nodes."""

    def __init__(self, *, settings, auth, sessions, fabric) -> None:
        super().__init__(settings=settings, auth=auth, sessions=sessions, fabric=fabric)
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        await self.fabric.start(self._deliver_remote)
        self._sweeper = asyncio.create_task(self._sweep(), name="signaling-sweeper")
        self.records.start()

    async def stop(self) -> None:
        await cancel(self._sweeper)
        for ws in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_AWAY, "server shutting down")
        await self.records.stop()  # after the closes: the departures they caused are recorded too
        await self.fabric.stop()

    async def handle(self, ws: WebSocket) -> None:
        """One client connection, from the Origin check to the last message."""
        origin = ws.headers.get("origin")
        if origin is not None and origin not in self.s.allowed_origins:
            await ws.close(CLOSE_POLICY)  # before accept: the client sees HTTP 403
            return
        await ws.accept()
        peer = await self._admit(ws)
        if peer is None:
            return
        code = None
        try:
            await self._serve(ws, peer)
        except self.disconnects as gone:  # the client went away: the end of a connection, not an error
            code = close_code(gone)
        finally:
            await self._lost(ws, peer, code)

    async def attach_local(
        self,
        room: str,
        conn,
        *,
        user_id: str,
        org_id: str = "",
        role: str | None = None,
        name: str | None = None,
    ):
        """Join an in-process peer (the pre-call echo) to a room without a token. `conn` stands in
        for its socket (`async send_text(str)`, `async close(code, reason)`); returns the peer and
        `feed(raw) -> bool`, which takes the peer's outgoing messages (False once it has left)."""
        remote = await self.fabric.remote_peers(room)
        peer, announce = self.rooms.join(
            room=room, user_id=user_id, org_id=org_id, remote_count=connected(remote), role=role, name=name
        )
        self._attach(conn, peer)
        await self._send_all(announce)
        await self.fabric.joined(room, peer.public())

        async def feed(raw: str) -> bool:
            ws = self.sockets.get(peer.peer_id)
            if ws is None or ws is not conn:
                return False
            if await self._on_message(ws, peer, raw):
                return True
            await self._lost(ws, peer)
            return False

        return peer, feed

    async def _serve(self, ws: WebSocket, peer: Peer) -> None:
        bucket, limit = (
            Bucket(self.s.signaling_rate_per_second, self.s.signaling_rate_burst),
            self.s.signaling_max_message_bytes,
        )
        dropped = 0
        # A socket may offer `recv` (text or bytes) itself: one coroutine frame less per connection.
        # No idle timeout: a quiet call is alive while its socket answers protocol pings.
        recv = getattr(ws, "recv", None) or functools.partial(self._receive, ws)
        while True:
            raw = await recv()
            if len(raw) > limit:  # uvicorn enforces this first (1009); this guards other servers
                await self._refuse(ws, "too_large", f"Messages are limited to {limit} bytes", CLOSE_TOO_BIG)
                return
            if not bucket.take():
                dropped += 1
                if dropped > self.s.signaling_rate_burst:
                    await self._refuse(ws, "rate_limited", "Too many messages", CLOSE_POLICY)
                    return
                await ws.send_text(error_frame("rate_limited", "Too many messages; this one was dropped"))
                continue
            dropped = 0
            if not await self._on_message(ws, peer, raw):
                return

    async def _on_message(self, ws: WebSocket, peer: Peer, raw: str | bytes) -> bool:
        """Act on one message; False when the peer is done."""
        try:
            msg = parse(raw)
            if isinstance(msg, Relay):
                await self._relay(peer, msg)
            elif isinstance(msg, Ping):
                await ws.send_text('{"type":"pong"}')
            elif isinstance(msg, Leave):
                await self._leave(peer)
                with contextlib.suppress(Exception):  # the client may close first: it is gone either way
                    await ws.close(CLOSE_NORMAL)
                return False
            else:
                raise ProtocolError("already_joined", "This connection has already joined")
        except ProtocolError as exc:
            await ws.send_text(error_frame(exc.code, exc.message))
        return True

    async def _relay(self, peer: Peer, msg: Relay) -> None:
        sends = self.rooms.relay(peer, msg)
        if sends:
            await self._send_all(sends)
        elif msg.to == peer.peer_id or self.rooms.local(peer.room, msg.to) is None:
            message = {"type": msg.kind, "from": peer.peer_id, **msg.body}
            if msg.to == peer.peer_id or not await self.fabric.forward(peer.room, msg.to, message):
                raise ProtocolError("unknown_peer", "No such peer in this call")
        RELAYED[msg.kind].inc()  # the parser admits offer, answer and candidate only

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.s.signaling_grace_seconds / 4))
            now = time.monotonic()
            for peer in self.rooms.expired(now):
                await self._leave(peer)
            self.ended.prune(now)
