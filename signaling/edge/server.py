"""The signaling WebSocket: the one module that owns sockets. What it decides, it asks of the core
(signaling.core: parsing, rooms, join admission) and of the fabric for the other nodes; it only
moves bytes and keeps time."""

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import Counter
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.errors import CLOSE_TRY_AGAIN, unavailable
from api.metrics import SIGNALING_ERRORS, SIGNALING_PEERS, SIGNALING_RELAYED, SIGNALING_ROOMS
from signaling import service
from signaling.calls import tokens
from signaling.calls.ice import ice_servers
from signaling.calls.records import Joined, Left, RecordWriter
from signaling.core.admission import (
    CallGrant,
    CloseOrders,
    admitted_at_once,
    call_closed,
    check_connections,
    settled,
)
from signaling.core.limits import Bucket
from signaling.core.messages import (
    Join,
    Leave,
    Ping,
    ProtocolError,
    Relay,
    Resume,
    encode,
    error,
    joined,
    parse,
    peer_state,
)
from signaling.core.rooms import Limits, Peer, Rooms, Send, described, new_peer_id
from signaling.fabric.local import Admission

log = logging.getLogger("liaison.signaling")
CLOSE_NORMAL, CLOSE_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG = 1000, 1001, 1008, 1009
# A socket closed with one of these has left: the client closed it (a tab closed), or this node is
# shutting down (uvicorn's 1012), where no resume could reach the peer's state.
DEPARTED = frozenset({CLOSE_NORMAL, CLOSE_AWAY, 1012})


# Children bound once: the relay's hot path does a dict lookup, not a labels() call, per message.
RELAYED = {kind: SIGNALING_RELAYED.labels(kind) for kind in ("offer", "answer", "candidate")}


def error_frame(code: str, message: str) -> str:
    """An `error` message's text, counted by its code (codes are the source's constants: bounded)."""
    SIGNALING_ERRORS.labels(code).inc()
    return encode(error(code, message))


async def collect(state: Any) -> None:
    """Rooms and peers this process holds, for /metrics (api.metrics.on_scrape)."""
    server = getattr(state, "signaling", None)  # absent outside the app's lifespan
    rooms = server.rooms.rooms if server is not None else {}
    SIGNALING_ROOMS.set(sum(1 for peers in rooms.values() if peers))
    SIGNALING_PEERS.set(sum(len(peers) for peers in rooms.values()))


def close_code(gone: BaseException) -> int | None:
    """The close code the client sent, from Starlette's or `websockets`' disconnect (None: no close frame)."""
    if hasattr(gone, "rcvd"):  # websockets: the close frame received, if any
        return gone.rcvd.code if gone.rcvd is not None else None
    code = getattr(gone, "code", None)
    return code if isinstance(code, int) else None


class SignalingServer:
    """This node's signaling: its rooms, its sockets, and the fabric to the other nodes."""

    def __init__(self, *, settings, auth, sessions, fabric) -> None:
        self.s, self.auth, self.sessions = settings, auth, sessions
        self.rooms = Rooms(
            Limits(
                settings.signaling_max_peers,
                settings.signaling_grace_seconds,
                settings.signaling_buffer_messages,
            )
        )
        self.sockets: dict[str, WebSocket] = {}
        self.per_user: Counter[str] = Counter()
        # Close orders heard: a join one of them may have raced is checked against the database.
        self.ended = CloseOrders(fabric.ledger.horizon)
        self.fabric = fabric
        # What a socket raises when its client has gone; a listener adds its library's own.
        self.disconnects: tuple[type[BaseException], ...] = (WebSocketDisconnect,)
        self._sweeper: asyncio.Task | None = None
        self.records = RecordWriter(sessions, settings.signaling_record_delay)

    async def start(self) -> None:
        await self.fabric.start(self._deliver_remote)
        self._sweeper = asyncio.create_task(self._sweep(), name="signaling-sweeper")
        self.records.start()

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        await self.records.stop()
        for ws in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_AWAY, "server shutting down")
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

    @staticmethod
    async def _receive(ws: WebSocket) -> str | bytes:
        """The next frame, text or binary (receive_text raises KeyError on a binary frame)."""
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return message["text"] if message.get("text") is not None else message.get("bytes") or b""

    async def _admit(self, ws: WebSocket) -> Peer | None:
        try:
            recv = getattr(ws, "recv", None) or functools.partial(self._receive, ws)
            async with asyncio.timeout(self.s.signaling_join_timeout):  # no task per join, as wait_for makes
                raw = await recv()
            msg = parse(raw)
            if isinstance(msg, Join):
                return await self._join(ws, msg)
            if isinstance(msg, Resume):
                return await self._resume(ws, msg)
            raise ProtocolError("join_first", "The first message is join (with a call token) or resume")
        except ProtocolError as exc:
            await self._refuse(ws, exc.code, exc.message)
        except TimeoutError:
            await self._refuse(ws, "join_timeout", "No join within the time allowed")
        except self.disconnects + (RuntimeError,):
            pass
        except Exception as exc:
            if (answer := unavailable(exc)) is None:
                raise
            log.warning(
                "join refused: the %s is not answering (%s)", answer.extra["store"], type(exc).__name__
            )
            await self._refuse(ws, answer.code, answer.detail, CLOSE_TRY_AGAIN)
        return None

    async def _join(self, ws: WebSocket, msg: Join) -> Peer:
        grant = tokens.check(self.auth, msg.token)
        # Limits this node can see are checked before the token is spent: it may be used once there is room.
        check_connections(self.per_user[grant.user_id], self.s.signaling_connections_per_user)
        self.rooms.check_space(grant.room)
        peer, announce, admission = await self._seat(grant)
        self._attach(ws, peer)
        await self._welcome(ws, peer, admission.remote)
        await self._send_all(announce)
        await self.fabric.joined(peer.room, peer.public(), known=admission.remote, entered=admission.entered)
        if grant.consult_id is not None:
            self.records.add(Joined(uuid.UUID(grant.consult_id), uuid.UUID(grant.user_id), peer.peer_id))
        return peer

    async def _seat(self, grant: CallGrant) -> tuple[Peer, list[Send], Admission]:
        """Admit the token and give the peer its place; what other nodes sent it meanwhile is its backlog."""
        # As Peer.public() will say it: other nodes hear this from the admission on.
        public = described(new_peer_id(), grant.user_id, grant.role, grant.name)
        self.rooms.expect(public["peer_id"])
        try:
            admission = await self._clear(grant, public)
            try:
                peer, announce = self.rooms.join(
                    room=grant.room,
                    user_id=grant.user_id,
                    org_id=grant.org_id,
                    remote_count=len(admission.remote),
                    peer_id=public["peer_id"],
                    role=grant.role,
                    name=grant.name,
                )
            except ProtocolError:
                await self.fabric.left(grant.room, public)
                raise
        finally:
            held = self.rooms.arrived(public["peer_id"])
        peer.consult_id, peer.session_id, peer.buffer = (
            grant.consult_id,
            grant.session_id,
            held,
        )  # later messages queue behind a backlog
        return peer, announce, admission

    async def _welcome(self, ws: WebSocket, peer: Peer, remote: list[dict]) -> None:
        """`joined`, then the backlog; a client gone before it heard them holds no place and no connection."""
        try:
            await ws.send_text(encode(self._joined(peer, remote)))
            await self._flush(ws, peer)
        except Exception:
            self._unlink(ws, peer)
            self.rooms.leave(peer)
            await self.fabric.left(peer.room, peer.public())
            raise

    async def _flush(self, ws: WebSocket, peer: Peer) -> None:
        """Send the peer's backlog in order, including what joins it meanwhile."""
        while peer.buffer:
            queued, peer.buffer = peer.buffer, []
            for message in queued:
                await ws.send_text(encode(message))

    async def _clear(self, grant: CallGrant, peer: dict) -> Admission:
        """Spend the token, learn the room's peers on other nodes and, for a fresh token, enter the room
        there, in one step; the database decides only when the ledger can't, or when a close order for
        this room or user came meanwhile (the peer then enters the room only once it has said yes)."""
        quiet = self.ended.quiet(grant, time.monotonic())
        admission = await self.fabric.admit(grant, peer, max_peers=self.s.signaling_max_peers, enter=quiet)
        if admitted_at_once(admission.verdict, self.ended, grant, time.monotonic()):
            return admission
        if admission.entered is not None:  # an order came while it entered: out again until the database says
            await self.fabric.left(grant.room, peer)
            admission = Admission(admission.verdict, admission.remote)
        while True:
            asked = time.monotonic()
            if not await self._may_join(grant):
                raise call_closed()
            if settled(self.ended, grant, asked):  # else an order raced the query: ask again
                return admission

    async def _may_join(self, grant: CallGrant) -> bool:
        async with self.sessions() as session:
            return await service.may_join(session, grant=grant)

    async def _resume(self, ws: WebSocket, msg: Resume) -> Peer:
        # Ask the fabric first: from the takeover until `joined` and the backlog are written, no
        # await may let a relay reach this socket ahead of them.
        found = self.rooms.find(msg.secret)
        remote = await self.fabric.remote_peers(found.room) if found is not None else []
        peer, queued = self.rooms.resume(msg.secret, time.monotonic())
        old = self.sockets.get(peer.peer_id)
        self._attach(ws, peer, count=old is None)
        sent = 0
        try:
            await ws.send_text(encode(self._joined(peer, remote, resumed=True)))
            for message in queued:
                await ws.send_text(encode(message))
                sent += 1
        except (
            Exception
        ):  # gone again: detached (not stuck 'connected'), what it missed kept for the next resume
            if self._unlink(ws, peer):
                self.rooms.detach(peer, time.monotonic())
            peer.buffer[:0] = queued[sent:]
            raise
        if old is None:  # it was shown reconnecting
            await self._tell_state(peer, "connected")
        else:  # the old link is half-open; this one took its place
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(CLOSE_NORMAL, "resumed on another connection"), 1)
        return peer

    def _joined(self, peer: Peer, remote: list[dict], *, resumed: bool = False) -> dict:
        return joined(
            peer_id=peer.peer_id,
            secret=peer.secret,
            room=peer.room,
            peers=self.rooms.others(peer, remote),
            ice_servers=ice_servers(self.s, peer.user_id, int(time.time())),
            resumed=resumed,
        )

    def _attach(self, ws: WebSocket, peer: Peer, count: bool = True) -> None:
        self.sockets[peer.peer_id] = ws
        if count:
            self.per_user[peer.user_id] += 1

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
            room=room, user_id=user_id, org_id=org_id, remote_count=len(remote), role=role, name=name
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

    async def _send_all(self, sends: list[Send]) -> None:
        for send in sends:
            ws = self.sockets.get(send.peer_id)
            if ws is not None:
                try:  # noqa: SIM105 -- not contextlib.suppress: this is the relay's hot path, once per message
                    await ws.send_text(encode(send.message))
                except Exception:
                    pass

    async def _lost(self, ws: WebSocket, peer: Peer, code: int | None = None) -> None:
        """The socket closed. Closed cleanly (see DEPARTED) the peer has left; its link
        lost, it keeps its place for the grace period and the others see it `reconnecting`."""
        if not self._unlink(ws, peer) or self.rooms.local(peer.room, peer.peer_id) is None:
            return
        if code in DEPARTED:
            await self._leave(peer)
            return
        self.rooms.detach(peer, time.monotonic())
        await self._tell_state(peer, "reconnecting")

    def _unlink(self, ws: WebSocket, peer: Peer) -> bool:
        """Forget the peer's socket; False if it was already replaced by a resumed one, or gone."""
        if self.sockets.get(peer.peer_id) is not ws:
            return False
        del self.sockets[peer.peer_id]
        self.per_user[peer.user_id] -= 1
        return True

    async def _tell_state(self, peer: Peer, state: str) -> None:
        """Tell the room's other peers, here and on other nodes, how this one's link stands."""
        message = peer_state(peer.public(), state)
        await self._send_all(self.rooms.tell_others(peer, message))
        try:
            remote = await self.fabric.remote_peers(peer.room)
            for other in remote:
                await self.fabric.forward(peer.room, other["peer_id"], message)
        except ProtocolError:  # Redis away: the others learn it from peer-left or the peer's return
            pass

    async def _leave(self, peer: Peer) -> None:
        await self._send_all(self.rooms.leave(peer))
        await self.fabric.left(peer.room, peer.public())
        if peer.consult_id is not None:
            self.records.add(Left(uuid.UUID(peer.consult_id), peer.peer_id))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.s.signaling_grace_seconds / 4))
            now = time.monotonic()
            for peer in self.rooms.expired(now):
                await self._leave(peer)
            self.ended.prune(now)

    async def close_room(self, room: str, reason: str) -> None:
        """End a call from the server side (consult closed, agreement revoked)."""
        self.ended.room_closed(room, time.monotonic())
        for peer in self.rooms.peers(room):
            await self._close_peer(peer, reason)

    async def close_user(self, user_id: str, reason: str, room: str | None = None) -> None:
        """End a user's calls: in one room (reassigned away), or all of them (disabled)."""
        if room:
            self.ended.room_closed(room, time.monotonic())
        else:
            self.ended.user_closed(user_id, time.monotonic())
        for r in [room] if room else list(self.rooms.rooms):
            for peer in self.rooms.peers(r):
                if peer.user_id == user_id:
                    await self._close_peer(peer, reason)

    async def close_session(self, session_id: str, reason: str) -> None:
        """End the calls joined with tokens of one sign-in (signed out, its refresh token reused)."""
        for r in list(self.rooms.rooms):
            for peer in self.rooms.peers(r):
                if peer.session_id == session_id:
                    await self._close_peer(peer, reason)

    async def _close_peer(self, peer: Peer, reason: str) -> None:
        ws = self.sockets.pop(peer.peer_id, None)
        await self._leave(peer)
        if ws is not None:
            self.per_user[peer.user_id] -= 1
            with contextlib.suppress(Exception):
                await ws.send_text(error_frame("call_closed", reason))
                await ws.close(CLOSE_NORMAL, reason[:100])

    async def _deliver_remote(self, room: str, to: str, message: dict) -> bool:
        sends, here = self.rooms.receive(room, to, message)
        if sends:
            await self._send_all(sends)
        return here

    async def _refuse(self, ws: WebSocket, code: str, message: str, close: int = CLOSE_POLICY) -> None:
        with contextlib.suppress(Exception):
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.send_text(error_frame(code, message))
                await ws.close(close)
