"""Emitting events inside a use case's transaction, and reading a channel's log back."""

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import UnitOfWork
from api.models import utcnow
from events.models import Event, channel_of_user

EVENTS = Event.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models at class creation


async def emit(
    session: AsyncSession,
    *,
    user_ids: Iterable[uuid.UUID] = (),
    channels: Iterable[str] = (),
    type: str,
    consult_id: uuid.UUID | None,
    data: dict,
) -> None:
    """Store one event per user or channel; the log sequences and pushes them once this commits."""
    stage(
        session,
        channels=[channel_of_user(uid) for uid in user_ids] + list(channels),
        type=type,
        consult_id=consult_id,
        data=data,
    )


def stage(
    session: AsyncSession, *, channels: Iterable[str], type: str, consult_id: uuid.UUID | None, data: dict
) -> None:
    """`emit` for callers that cannot await (orders staged from synchronous helpers)."""
    now = utcnow()
    rows = [
        {"channel": c, "type": type, "consult_id": consult_id, "data": data, "created_at": now}
        for c in dict.fromkeys(channels)
    ]
    if rows:
        assert isinstance(session, UnitOfWork)
        session.insert_later(EVENTS, rows)
        session.emitted = True


async def missed(session: AsyncSession, *, channels: list[str], after: int, limit: int = 500) -> list[Event]:
    """The channels' events after position `after`, in log order."""
    query = (
        select(Event)
        .where(col(Event.channel).in_(channels), col(Event.pos) > after)
        .order_by(col(Event.pos))
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
