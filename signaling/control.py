"""Orders to every node's signaling server (close a room, close a user's calls), sent on the event
bus once the transaction that caused them commits. Not stored: a node that is down has no sockets."""

import asyncio
import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import after_commit

CHANNEL = "control:signaling"


def room_of(consult_id: uuid.UUID | str) -> str:
    return f"consult-{consult_id}"


def close_room(session: AsyncSession, consult_id: uuid.UUID, reason: str) -> None:
    _order(session, {"action": "close_room", "room": room_of(consult_id), "reason": reason})


def close_user(session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    _order(session, {"action": "close_user", "user_id": str(user_id), "reason": reason})


def _order(session: AsyncSession, order: dict) -> None:
    async def publish(s: AsyncSession) -> None:
        bus = s.info.get("bus")
        if bus is not None:
            await bus.publish([{"channel": CHANNEL, "id": 0, **order}])

    after_commit(session, publish)


async def obey(bus, server) -> None:
    """Run forever: carry out the orders this node hears."""
    sub = bus.subscribe([CHANNEL])
    try:
        while True:
            order = await sub.queue.get()
            with contextlib.suppress(Exception):
                if order["action"] == "close_room":
                    await server.close_room(order["room"], order["reason"])
                elif order["action"] == "close_user":
                    await server.close_user(order["user_id"], order["reason"])
    except asyncio.CancelledError:
        bus.unsubscribe(sub)
        raise
