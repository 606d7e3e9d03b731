"""Pre-call check: a server-side aiortc peer (signaling.peers.echo) in an echo room.

The echo peer joins its room when the pre-call token is issued, so the client finds it there and
calls it. This object owns every echo peer and its RTCPeerConnection: each is closed when the
client leaves, when its connection fails, after `timeout` seconds at most, and at shutdown.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

from api.errors import TooManyRequests

if TYPE_CHECKING:  # aiortc is imported on the first check (below), not with this module
    from signaling.peers.echo import EchoPeer

log = logging.getLogger("liaison.precall")


class PrecallRooms:
    """The echo rooms of this node: at most `max_rooms` at once (each decodes and encodes video),
    and `per_user` for one user (a further check of theirs ends their oldest)."""

    def __init__(self, server, *, timeout: float = 60.0, max_rooms: int = 16, per_user: int = 2) -> None:
        self.server, self.timeout, self.max_rooms, self.per_user = server, timeout, max_rooms, per_user
        self.echoes: dict[str, tuple[EchoPeer, asyncio.Task[None]]] = {}
        self.owners: dict[str, str | None] = {}  # room -> the user it was issued to

    @property
    def expected(self) -> set[str]:
        return set(self.echoes)

    async def expect(self, room: str, user_id: str | None = None) -> None:
        """Put an echo peer in the room (before the client joins it)."""
        if len(self.echoes) >= self.max_rooms:
            raise TooManyRequests(
                int(self.timeout), "Too many pre-call checks are running; try again shortly"
            )
        mine = [r for r, owner in self.owners.items() if user_id is not None and owner == user_id]
        for old in mine[: max(0, len(mine) - self.per_user + 1)]:  # a new check replaces the user's oldest
            self.owners.pop(old)
            self.echoes[old][0].socket.inbox.put_nowait(None)
        from signaling.peers.echo import EchoPeer  # aiortc is loaded on the first pre-call check only

        echo = EchoPeer(self.server, room, timeout=self.timeout)
        await echo.attach()
        task = asyncio.create_task(echo.run(), name=f"precall-{room}")
        self.echoes[room], self.owners[room] = (echo, task), user_id
        task.add_done_callback(lambda _: (self.echoes.pop(room, None), self.owners.pop(room, None)))

    async def stop(self) -> None:
        """End every check: ask each echo to finish, then cancel those that do not."""
        running = list(self.echoes.values())
        for echo, _ in running:
            echo.socket.inbox.put_nowait(None)
        tasks = [task for _, task in running]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.echoes.clear()
        self.owners.clear()
