"""Ending calls from the API: each end is marked in the ledger before its transaction commits (so
no call token issued before it gets in without the database's word), and ordered to every node's
signaling server through the event log, which delivers it once the transaction has committed."""

import asyncio
import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import before_commit
from events.control import SESSIONS, order

CHANNEL = "control:signaling"


def room_of(consult_id: uuid.UUID | str) -> str:
    return f"consult-{consult_id}"


def close_room(session: AsyncSession, consult_id: uuid.UUID, reason: str) -> None:
    """The consult's calls end for everyone in them (cancelled, completed, its agreement ended)."""
    _mark(session, rooms=(room_of(consult_id),))
    order(session, CHANNEL, {"action": "close_room", "room": room_of(consult_id), "reason": reason})


def remove_from_room(session: AsyncSession, consult_id: uuid.UUID, user_id: uuid.UUID, reason: str) -> None:
    """One person's place in the consult's calls ends (a reassigned specialist)."""
    _mark(session, rooms=(room_of(consult_id),))
    order(
        session,
        CHANNEL,
        {"action": "close_user", "room": room_of(consult_id), "user_id": str(user_id), "reason": reason},
    )


def user_calls_end(session: AsyncSession, user_id: uuid.UUID) -> None:
    """The user may join no call (disabled); events.control.user_ended orders their connections closed."""
    _mark(session, users=(str(user_id),))


def _mark(session: AsyncSession, *, rooms: tuple[str, ...] = (), users: tuple[str, ...] = ()) -> None:
    async def mark(s: AsyncSession) -> None:
        ledger = s.ledger  # type: ignore[attr-defined]
        if ledger is not None:
            await ledger.end(rooms=rooms, users=users)

    before_commit(session, mark)


async def obey(bus, server) -> None:
    """Run forever: carry out the orders this node hears."""
    sub = bus.subscribe([CHANNEL, SESSIONS])  # a disabled user's or a signed-out sign-in's calls end too
    try:
        while True:
            heard = (await sub.queue.get())["data"]
            with contextlib.suppress(Exception):
                if heard["action"] == "close_room":
                    await server.close_room(heard["room"], heard["reason"])
                elif heard["action"] == "close_user":
                    await server.close_user(heard["user_id"], heard["reason"], room=heard.get("room"))
                elif heard["action"] == "close_session":
                    await server.close_session(heard["session_id"], heard["reason"])
    except asyncio.CancelledError:
        bus.unsubscribe(sub)
        raise
