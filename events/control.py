"""Orders that end what a user or a sign-in has open (sockets), sent on the bus after commit.

Not stored: they concern live connections only, and a node that is down has none."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import after_commit

SESSIONS = "control:sessions"


def user_ended(session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    """The user was disabled: close every connection of theirs."""
    order(session, SESSIONS, {"action": "close_user", "user_id": str(user_id), "reason": reason})


def session_ended(session: AsyncSession, session_id: uuid.UUID, reason: str) -> None:
    """A sign-in was revoked (sign-out, refresh-token reuse): close what it opened."""
    order(session, SESSIONS, {"action": "close_session", "session_id": str(session_id), "reason": reason})


def order(session: AsyncSession, channel: str, body: dict) -> None:
    """Publish `body` on `channel` once the session's transaction commits."""
    async def publish(s: AsyncSession) -> None:
        bus = s.bus
        if bus is not None:
            await bus.publish([{"channel": channel, "id": 0, **body}])

    after_commit(session, publish)


def ends(order_: dict, *, user_id: str, session_id: str | None) -> bool:
    """Does this order close a connection of that user and sign-in?"""
    if order_.get("action") == "close_user":
        return order_.get("user_id") == user_id
    return order_.get("action") == "close_session" and session_id is not None and order_.get("session_id") == session_id
