"""What every part of the signaling server shares: its state, and a peer's links to its socket and
to the room (attach, unlink, send, tell the others, leave, lose the link)."""

import contextlib
import logging
import time
import uuid
from collections import Counter

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.metrics import SIGNALING_ERRORS, SIGNALING_RELAYED
from signaling.calls.records import Left, RecordWriter
from signaling.core.admission import CloseOrders
from signaling.core.messages import ProtocolError, encode, error, peer_state
from signaling.core.rooms import Limits, Peer, Rooms, Send

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


def close_code(gone: BaseException) -> int | None:
    """The close code the client sent, from Starlette's or `websockets`' disconnect (None: no close frame)."""
    if hasattr(gone, "rcvd"):  # websockets: the close frame received, if any
        return gone.rcvd.code if gone.rcvd is not None else None
    code = getattr(gone, "code", None)
    return code if isinstance(code, int) else None


class Links:
    """This node's rooms, its sockets, and the fabric to the other nodes; the moves every path shares."""

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
        self.records = RecordWriter(sessions, settings.signaling_record_delay)

    @staticmethod
    async def _receive(ws: WebSocket) -> str | bytes:
        """The next frame, text or binary (receive_text raises KeyError on a binary frame)."""
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return message["text"] if message.get("text") is not None else message.get("bytes") or b""

    def _attach(self, ws: WebSocket, peer: Peer, count: bool = True) -> None:
        self.sockets[peer.peer_id] = ws
        if count:
            self.per_user[peer.user_id] += 1

    def _unlink(self, ws: WebSocket, peer: Peer) -> bool:
        """Forget the peer's socket; False if it was already replaced by a resumed one, or gone."""
        if self.sockets.get(peer.peer_id) is not ws:
            return False
        del self.sockets[peer.peer_id]
        self.per_user[peer.user_id] -= 1
        return True

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

    async def _tell_state(self, peer: Peer, state: str) -> None:
        """Tell the room's other peers, here and on other nodes, how this one's link stands (and the
        room's presence, which newcomers on any node are listed from and the room's limit counts)."""
        message = peer_state(peer.public(), state)
        await self._send_all(self.rooms.tell_others(peer, message))
        await self.fabric.restate(peer.room, peer.peer_id, state)
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

    async def _deliver_remote(self, room: str, to: str, message: dict) -> bool:
        sends, here = self.rooms.receive(room, to, message)
        for send in sends:
            if self.rooms.local(room, send.peer_id) is not None:
                await self._send_all([send])
            else:  # a `held` notice to a sender on another node
                with contextlib.suppress(ProtocolError):
                    await self.fabric.forward(room, send.peer_id, send.message)
        return here

    async def _refuse(self, ws: WebSocket, code: str, message: str, close: int = CLOSE_POLICY) -> None:
        with contextlib.suppress(Exception):
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.send_text(error_frame(code, message))
                await ws.close(close)
