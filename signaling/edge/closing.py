"""Calls ended from the server side: close orders for a room, a user or a sign-in, carried out on
this node's sockets (the orders themselves are remembered in `ended`, for joins they may race)."""

import contextlib
import time

from signaling.core.rooms import Peer
from signaling.edge.links import CLOSE_NORMAL, Links, error_frame


class Closing(Links):
    """Close orders: every matching peer here leaves, told why, its socket closed."""

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
