"""The consult's thread: every consult has one; async consults live in it."""

import hashlib
import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.exceptions import Hidden
from auth.principal import Actor
from consults import access
from consults.attachments import service as attachments
from consults.attachments.models import Attachment
from consults.exceptions import IdempotencyInFlight, IdempotencyMismatch, InvalidTransition
from consults.lifecycle import CLOSED
from consults.models import Message
from consults.notify import people
from events.service import emit


async def post(
    session: AsyncSession,
    *,
    actor: Actor,
    consult_id: uuid.UUID,
    body: str,
    attachment_ids: list[uuid.UUID],
    idempotency_key: str | None = None,
) -> tuple[Message, list[Attachment], bool]:
    """Add a message with its attachments; (message, attachments, created?). The assignee's first starts
    the response clock. A retry with the same Idempotency-Key and body gets the message first stored."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    digest = _hash(body, attachment_ids)
    if idempotency_key and (prior := await _replay(session, actor, idempotency_key, digest)):
        return prior, (await attachments.of_messages(session, [prior.id])).get(prior.id, []), False
    if consult.status in CLOSED:
        raise InvalidTransition(consult.status, "The thread of a closed consult is read-only")
    now = datetime.now(UTC)
    message = Message(
        consult_id=consult.id,
        author_id=actor.id,
        author_org_id=actor.org_id,
        body=body,
        created_at=now,
        idempotency_key=idempotency_key,
        request_hash=digest if idempotency_key else None,
    )
    session.add(message)
    try:
        await session.flush()
    except IntegrityError:
        # The same key from a request that got there first: once it has committed, replay it.
        await session.rollback()
        if idempotency_key and (prior := await _replay(session, actor, idempotency_key, digest)):
            return prior, (await attachments.of_messages(session, [prior.id])).get(prior.id, []), False
        raise IdempotencyInFlight() from None
    files = await attachments.attach(session, actor=actor, message=message, attachment_ids=attachment_ids)
    if actor.id == consult.assigned_to and consult.first_response_at is None:
        consult.first_response_at = now
    await emit(
        session,
        user_ids=[u for u in people(consult) if u != actor.id],
        type="message.created",
        consult_id=consult.id,
        data={
            "message_id": str(message.id),
            "author_id": str(actor.id),
            "attachments": attachments.metadata(files),
        },
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
    return message, files, True


async def thread(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, page: PageParams
) -> list[tuple[Message, list[Attachment]]]:
    """The thread, oldest first, each message with its attachments."""
    consult, _ = await access.load(session, actor, consult_id)
    rows = list(
        (
            await session.execute(
                select(Message)
                .where(col(Message.consult_id) == consult.id)
                .order_by(col(Message.created_at), col(Message.id))
                .limit(page.limit + 1)
                .offset(page.offset)
            )
        ).scalars()
    )
    files = await attachments.of_messages(session, [m.id for m in rows])
    await record(
        session,
        actor=actor,
        action="message.list",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return [(m, files.get(m.id, [])) for m in rows]


async def _replay(session: AsyncSession, actor: Actor, key: str, digest: str) -> Message | None:
    """The message first stored with this key, if any; the same key with another body is refused."""
    query = select(Message).where(col(Message.author_id) == actor.id, col(Message.idempotency_key) == key)
    prior = (await session.execute(query)).scalar_one_or_none()
    if prior is not None and prior.request_hash != digest:
        raise IdempotencyMismatch()
    return prior


def _hash(body: str, attachment_ids: list[uuid.UUID]) -> str:
    payload = {"body": body, "attachment_ids": [str(a) for a in attachment_ids]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


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
