"""Orders that end what a user or a sign-in has open (sockets), stored in the event log with the
change that caused them, so that every node hears them once they commit — even a node that
committed and died before telling anyone, or while Redis was away."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from events.service import stage

SESSIONS = "control:sessions"


def user_ended(session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    """The user was disabled: close every connection of theirs."""
    order(session, SESSIONS, {"action": "close_user", "user_id": str(user_id), "reason": reason})


def session_ended(session: AsyncSession, session_id: uuid.UUID, reason: str) -> None:
    """A sign-in was revoked (sign-out, refresh-token reuse): close what it opened."""
    order(session, SESSIONS, {"action": "close_session", "session_id": str(session_id), "reason": reason})


def roles_changed(session: AsyncSession, user_id: uuid.UUID) -> None:
    """The user's roles changed: their open sockets re-read who they are and re-scope at once."""
    order(session, SESSIONS, {"action": "rescope_user", "user_id": str(user_id), "reason": "roles changed"})


def client_ended(session: AsyncSession, client_id: uuid.UUID, reason: str) -> None:
    """An integration client was disabled or deleted: close every connection it opened."""
    order(session, SESSIONS, {"action": "close_client", "client_id": str(client_id), "reason": reason})


def order(session: AsyncSession, channel: str, body: dict) -> None:
    """Store `body` for `channel`; every node's subscribers receive it once this transaction commits."""
    stage(session, channels=[channel], type=body["action"], consult_id=None, data=body)


def ends(order_: dict, *, user_id: str, session_id: str | None) -> bool:
    """Does this order (an event's `data`) close a connection of that user (or client: `user_id` is
    the principal's id) and sign-in?"""
    if order_.get("action") == "close_user":
        return order_.get("user_id") == user_id
    if order_.get("action") == "close_client":
        return order_.get("client_id") == user_id
    return (
        order_.get("action") == "close_session"
        and session_id is not None
        and order_.get("session_id") == session_id
    )


def rescopes(order_: dict, *, user_id: str) -> bool:
    """Does this order (an event's `data`) ask that user's connections to re-read their roles?"""
    return order_.get("action") == "rescope_user" and order_.get("user_id") == user_id
