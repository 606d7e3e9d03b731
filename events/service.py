"""Emitting events inside a use case's transaction, publishing them once it commits, replaying."""

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import after_commit
from events.models import Event, channel_of_user


async def emit(session: AsyncSession, *, user_ids: Iterable[uuid.UUID] = (), channels: Iterable[str] = (),
               type: str, consult_id: uuid.UUID | None, data: dict) -> None:
    """Store one event per user or channel now; they are pushed only after the transaction commits."""
    targets = [channel_of_user(uid) for uid in user_ids] + list(channels)
    rows = [Event(channel=c, type=type, consult_id=consult_id, data=data) for c in dict.fromkeys(targets)]
    if not rows:
        return
    session.add_all(rows)
    outbox: list[Event] = session.info.setdefault("outbox", [])
    if not outbox:
        after_commit(session, _publish)
    outbox.extend(rows)


async def _publish(session: AsyncSession) -> None:
    rows = session.info.pop("outbox", [])
    bus = session.bus
    if bus is not None and rows:
        await bus.publish([r.wire() for r in rows])


async def missed(session: AsyncSession, *, channels: list[str], after_id: int, limit: int = 500) -> list[Event]:
    """The channels' events after `after_id`, oldest first."""
    query = select(Event).where(Event.channel.in_(channels), Event.id > after_id).order_by(Event.id).limit(limit)
    return list((await session.execute(query)).scalars())
