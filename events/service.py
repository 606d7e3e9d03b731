"""Emitting events inside a use case's transaction, and reading a channel's log back."""

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import UnitOfWork
from events.models import Event, channel_of_user


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
    rows = [Event(channel=c, type=type, consult_id=consult_id, data=data) for c in dict.fromkeys(channels)]
    if rows:
        session.add_all(rows)
        assert isinstance(session, UnitOfWork)
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
