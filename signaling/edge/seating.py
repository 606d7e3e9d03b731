"""The way into a call: the first message (join with a call token, or resume), the token's admission
across nodes, the peer's seat in its room, and `joined` with the backlog written before any relay."""

import asyncio
import contextlib
import functools
import time
import uuid

from fastapi import WebSocket

from api.errors import CLOSE_TRY_AGAIN, unavailable
from signaling import service
from signaling.calls import tokens
from signaling.calls.ice import ice_servers
from signaling.calls.records import Joined
from signaling.core.admission import CallGrant, admitted_at_once, call_closed, check_connections, settled
from signaling.core.messages import Join, ProtocolError, Resume, encode, joined, parse
from signaling.core.rooms import Peer, Send, connected, described, new_peer_id
from signaling.edge.links import CLOSE_NORMAL, Links, log
from signaling.fabric.local import Admission


class Seating(Links):
    """Join and resume: from an accepted socket to a seated peer that has heard `joined`."""

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
                    remote_count=connected(admission.remote),
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
        try:
            remote = await self._reclaim(found)
            peer, queued = self.rooms.resume(msg.secret, time.monotonic(), connected(remote))
        except ProtocolError as exc:
            if exc.code == "room_full" and found is not None:  # its place was taken meanwhile: it has left
                await self._leave(found)
            raise
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

    async def _reclaim(self, found: Peer | None) -> list[dict]:
        """The room's remote peers, a peer shown reconnecting having taken a place in the room again
        in one step on the fabric that counts every node's peers: two resumes on two nodes cannot both
        take its last place. (Rooms.resume counts this node's again, with no await in between.)"""
        if found is None or self.rooms.lapsed(found, time.monotonic()):
            return []  # Rooms.resume refuses it
        if found.connected:  # a takeover of a link the server still thinks open: it holds its place
            return await self.fabric.remote_peers(found.room)
        return await self.fabric.reseat(found.room, found.public(), max_peers=self.s.signaling_max_peers)

    def _joined(self, peer: Peer, remote: list[dict], *, resumed: bool = False) -> dict:
        return joined(
            peer_id=peer.peer_id,
            secret=peer.secret,
            room=peer.room,
            peers=self.rooms.others(peer, remote),
            ice_servers=ice_servers(self.s, peer.user_id, int(time.time())),
            resumed=resumed,
        )
