"""Orders to every node's signaling server (close a room, close a user's calls), sent on the event
bus once the transaction that caused them commits. Not stored: a node that is down has no sockets."""

import asyncio
import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from events.control import SESSIONS, order

CHANNEL = "control:signaling"


def room_of(consult_id: uuid.UUID | str) -> str:
    return f"consult-{consult_id}"


def close_room(session: AsyncSession, consult_id: uuid.UUID, reason: str) -> None:
    order(session, CHANNEL, {"action": "close_room", "room": room_of(consult_id), "reason": reason})


async def obey(bus, server) -> None:
    """Run forever: carry out the orders this node hears."""
    sub = bus.subscribe([CHANNEL, SESSIONS])  # a disabled user's calls end too
    try:
        while True:
            heard = await sub.queue.get()
            with contextlib.suppress(Exception):
                if heard["action"] == "close_room":
                    await server.close_room(heard["room"], heard["reason"])
                elif heard["action"] == "close_user":
                    await server.close_user(heard["user_id"], heard["reason"])
    except asyncio.CancelledError:
        bus.unsubscribe(sub)
        raise
