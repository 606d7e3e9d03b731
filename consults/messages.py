"""The consult's thread: every consult has one; async consults live in it."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.exceptions import Hidden
from auth.principal import Actor
from consults import access
from consults.exceptions import InvalidTransition
from consults.lifecycle import CLOSED
from consults.models import Message
from consults.notify import people
from events.service import emit


async def post(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, body: str) -> Message:
    """Add a message; the first one from the assignee starts the response clock."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if consult.status in CLOSED:
        raise InvalidTransition(consult.status, "The thread of a closed consult is read-only")
    now = datetime.now(UTC)
    message = Message(
        consult_id=consult.id, author_id=actor.id, author_org_id=actor.org_id, body=body, created_at=now
    )
    session.add(message)
    if actor.id == consult.assigned_to and consult.first_response_at is None:
        consult.first_response_at = now
    await emit(
        session,
        user_ids=[u for u in people(consult) if u != actor.id],
        type="message.created",
        consult_id=consult.id,
        data={"message_id": str(message.id), "author_id": str(actor.id)},
    )
    await record(
        session,
        actor=actor,
        action="message.create",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return message


async def thread(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, page: PageParams
) -> list[Message]:
    """The thread, oldest first."""
    consult, _ = await access.load(session, actor, consult_id)
    rows = (
        await session.execute(
            select(Message)
            .where(col(Message.consult_id) == consult.id)
            .order_by(col(Message.created_at), col(Message.id))
            .limit(page.limit + 1)
            .offset(page.offset)
        )
    ).scalars()
    await record(
        session,
        actor=actor,
        action="message.list",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return list(rows)


async def read(session: AsyncSession, *, actor: Actor, message_id: uuid.UUID) -> Message:
    """One message, to whoever may read its consult's thread; otherwise 404, as if it did not exist."""
    message = await session.get(Message, message_id)
    if message is None:
        raise Hidden()
    consult, _ = await access.load(session, actor, message.consult_id)
    await record(
        session,
        actor=actor,
        action="message.read",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return message
