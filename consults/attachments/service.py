"""Attachments as the thread shows them: listed, served (audited), and attached to a message."""

import uuid
from collections import Counter

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from audit.service import record
from auth.exceptions import Hidden
from auth.principal import Actor
from consults import access
from consults.attachments.exceptions import BadAttachment
from consults.attachments.models import Attachment, Blob
from consults.models import Message


async def listing(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID
) -> tuple[list[Attachment], access.View]:
    """The consult's posted attachments (and the caller's own not yet posted), with the caller's view."""
    consult, view = await access.load(session, actor, consult_id, need=access.View.triage)
    shown: ColumnElement[bool] = col(Attachment.message_id).is_not(None)
    if view is access.View.full:
        shown = or_(shown, col(Attachment.uploader_id) == actor.id)
    query = select(Attachment).where(col(Attachment.consult_id) == consult.id, shown)
    rows = list((await session.execute(query.order_by(col(Attachment.created_at)))).scalars())
    await _audit(session, actor, "attachment.list", consult.org_id, consult.id, view.value, "consult")
    await commit(session)
    return rows, view


def types_of(rows: list[Attachment]) -> dict[str, int]:
    return dict(Counter(r.media_type for r in rows))


async def download(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, attachment_id: uuid.UUID, what: str
) -> Attachment:
    """An attachment whose content the caller may read (the consult's full view); audited."""
    consult, _ = await access.load(session, actor, consult_id)
    attachment = await session.get(Attachment, attachment_id)
    if (
        attachment is None
        or attachment.consult_id != consult.id
        or (attachment.message_id is None and attachment.uploader_id != actor.id)
    ):
        raise Hidden()
    await _audit(session, actor, f"attachment.{what}", consult.org_id, attachment.id, attachment.media_type)
    await commit(session)
    return attachment


async def attach(
    session: AsyncSession, *, actor: Actor, message: Message, attachment_ids: list[uuid.UUID]
) -> list[Attachment]:
    """Put the caller's own unposted attachments of this consult on the message (its transaction)."""
    if not attachment_ids:
        return []
    query = select(Attachment).where(col(Attachment.id).in_(attachment_ids)).with_for_update()
    rows = list((await session.execute(query)).scalars())
    if len(rows) != len(set(attachment_ids)) or any(
        r.consult_id != message.consult_id or r.uploader_id != actor.id or r.message_id is not None
        for r in rows
    ):
        raise BadAttachment("Each attachment must be yours, of this consult, and not yet posted")
    for row in rows:
        row.message_id = message.id
    return sorted(rows, key=lambda r: attachment_ids.index(r.id))


async def of_messages(
    session: AsyncSession, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Attachment]]:
    """The attachments of each message."""
    if not message_ids:
        return {}
    query = (
        select(Attachment)
        .where(col(Attachment.message_id).in_(message_ids))
        .order_by(col(Attachment.created_at))
    )
    found: dict[uuid.UUID, list[Attachment]] = {}
    for row in (await session.execute(query)).scalars():
        found.setdefault(row.message_id or uuid.UUID(int=0), []).append(row)
    return found


def metadata(rows: list[Attachment]) -> list[dict]:
    """What `message.created` events and webhooks say of a message's attachments: never content."""
    return [
        {
            "id": str(r.id),
            "kind": r.kind.value,
            "media_type": r.media_type,
            "filename": r.filename,
            "size": r.size,
        }
        for r in rows
    ]


async def _audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    org_id: uuid.UUID,
    rid: uuid.UUID,
    reason: str,
    rtype: str = "attachment",
) -> None:
    await record(
        session,
        actor=actor,
        action=action,
        org_id=org_id,
        resource_type=rtype,
        resource_id=rid,
        reason=reason,
    )


async def thumbnail(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, attachment_id: uuid.UUID
) -> tuple[Attachment, str, int]:
    """A photo's thumbnail: (the attachment, the thumbnail's digest and size); audited as a download."""
    row = await download(
        session, actor=actor, consult_id=consult_id, attachment_id=attachment_id, what="thumbnail"
    )
    size = None
    if row.thumbnail_sha256 is not None:
        query = select(col(Blob.size)).where(col(Blob.sha256) == row.thumbnail_sha256)
        size = (await session.execute(query)).scalar()
        await commit(session)  # a read: nothing to write, the connection goes back
    if row.thumbnail_sha256 is None or size is None:
        raise Hidden()  # only photos have thumbnails
    return row, row.thumbnail_sha256, size
