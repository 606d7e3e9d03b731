"""Read receipts: who has read the consult's thread, up to which message."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from audit.service import record
from auth.principal import Actor
from consults import access
from consults.exceptions import UnknownMessage
from consults.models import Message, ThreadRead


async def mark(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, message_id: uuid.UUID
) -> ThreadRead:
    """The caller has read the thread up to this message; a receipt never moves back."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    message = await session.get(Message, message_id)
    if message is None or message.consult_id != consult.id:
        raise UnknownMessage()
    query = select(ThreadRead).where(
        col(ThreadRead.consult_id) == consult.id, col(ThreadRead.user_id) == actor.id
    )
    receipt = (await session.execute(query)).scalar_one_or_none()
    now = datetime.now(UTC)
    if receipt is None:
        receipt = ThreadRead(consult_id=consult.id, user_id=actor.id, message_id=message.id, read_at=now)
        session.add(receipt)
    elif await _later(session, message, receipt.message_id):
        receipt.message_id, receipt.read_at = message.id, now
    await record(
        session,
        actor=actor,
        action="thread.read",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return receipt


async def receipts(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID) -> list[ThreadRead]:
    """Every reader's receipt on the consult's thread."""
    consult, _ = await access.load(session, actor, consult_id)
    query = (
        select(ThreadRead).where(col(ThreadRead.consult_id) == consult.id).order_by(col(ThreadRead.read_at))
    )
    rows = list((await session.execute(query)).scalars())
    await record(
        session,
        actor=actor,
        action="thread.reads",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return rows


async def _later(session: AsyncSession, message: Message, than: uuid.UUID) -> bool:
    before = await session.get(Message, than)
    return before is None or (message.created_at, str(message.id)) > (before.created_at, str(before.id))
