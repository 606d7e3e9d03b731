"""Resumable uploads, the tus protocol's core with creation, termination and expiration.

A piece is kept (its bytes, then its row and the new offset in one transaction) every megabyte
and when the link drops, so an upload cut anywhere resumes from what the server holds. The row's
offset only moves by a conditional UPDATE from the offset the piece started at: a retried or
concurrent piece for bytes already held is refused (409), never stored twice.
"""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import affected, commit
from api.settings import Settings
from audit.service import record
from auth.exceptions import Hidden
from auth.principal import Actor
from consults import access
from consults.attachments import finalize, headers
from consults.attachments.discard import drop
from consults.attachments.exceptions import (
    OffsetMismatch,
    TooLarge,
    TypeMismatch,
    TypeRefused,
    UploadGone,
)
from consults.attachments.models import Attachment, Piece, Upload, UploadStatus
from consults.attachments.sniff import HEAD, names_match, sniff
from consults.attachments.storage import CHUNK, Store
from consults.exceptions import InvalidTransition
from consults.lifecycle import CLOSED

# The route of a PATCH, whose body may be as large as the largest kind (api.middleware lets it).
UPLOAD_PATH = re.compile(r"^/api/v1/consults/[0-9a-fA-F-]{36}/uploads/[0-9a-fA-F-]{36}$")


def largest(settings: Settings) -> int:
    """The most any upload may declare: the limit of the largest kind."""
    return max(limits(settings).values())


def limits(settings: Settings) -> dict[str, int]:
    return {
        "photo": settings.attachments_photo_max_bytes,
        "clip": settings.attachments_clip_max_bytes,
        "document": settings.attachments_document_max_bytes,
        "opaque": settings.attachments_opaque_max_bytes,
    }


async def create(
    session: AsyncSession,
    *,
    actor: Actor,
    store: Store,
    settings: Settings,
    consult_id: uuid.UUID,
    upload_length: str | None,
    upload_metadata: str | None,
) -> Upload:
    """Open an upload of Upload-Length bytes on the consult (someone who sees it in full)."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    length, filename = headers.length(upload_length), headers.metadata(upload_metadata).get("filename", "")
    if consult.status in CLOSED:
        raise InvalidTransition(consult.status, "The thread of a closed consult is read-only")
    if length > largest(settings):
        raise TooLarge(f"Uploads are limited to {largest(settings)} bytes")
    now = datetime.now(UTC)
    await purge_expired(session, store, now)
    upload = Upload(
        consult_id=consult.id,
        uploader_id=actor.id,
        length=length,
        filename=filename,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.attachments_upload_ttl_seconds),
    )
    session.add(upload)
    await _audit(session, actor, "upload.create", consult.org_id, upload.id)
    await commit(session)
    return upload


async def status(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, upload_id: uuid.UUID
) -> Upload:
    """The upload as the server holds it (its uploader only, while they still see the consult)."""
    upload = await _own(session, actor, consult_id, upload_id)
    session.expunge(upload)  # kept as read: the rollback below would expire it
    await session.rollback()  # a read only: hand the connection back
    return upload


async def terminate(
    session: AsyncSession, *, actor: Actor, store: Store, consult_id: uuid.UUID, upload_id: uuid.UUID
) -> None:
    """Drop an unfinished upload and every byte of it."""
    upload = await _own(session, actor, consult_id, upload_id, expired_ok=True)
    if upload.status is UploadStatus.complete:
        raise InvalidTransition("complete", "The upload is complete: it is an attachment now")
    await drop(session, store, upload.id)
    consult, _ = await access.load(session, actor, consult_id)
    await _audit(session, actor, "upload.terminate", consult.org_id, upload.id)
    await commit(session)


async def append(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Actor,
    store: Store,
    settings: Settings,
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    upload_offset: str | None,
    content_type: str | None,
    body: AsyncIterator[bytes],
) -> tuple[Upload, Attachment | None]:
    """Take a PATCH's bytes from Upload-Offset, streamed; the attachment once the last byte is in."""
    # Many short transactions on purpose: one per piece kept, so a cut link loses nothing held,
    # and no write lock is held while the client's bytes trickle in.
    async with sessions() as session:
        upload = await status(session, actor=actor, consult_id=consult_id, upload_id=upload_id)
    headers.offset_stream(content_type)
    offset = headers.offset(upload_offset)
    if upload.status is UploadStatus.complete or offset != upload.offset:
        raise OffsetMismatch(f"The server holds {upload.offset} bytes", upload_offset=upload.offset)
    writer = _Writer(sessions, store, settings, upload)
    try:
        async for chunk in body:
            await writer.take(chunk)
    finally:
        await writer.flush()  # what arrived before a cut is kept
    if writer.upload.offset < writer.upload.length:
        return writer.upload, None
    return writer.upload, await finalize.run(
        sessions, actor=actor, store=store, settings=settings, upload=writer.upload
    )


class _Writer:
    """Buffers a PATCH body into pieces of at most CHUNK bytes and keeps each."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], store: Store, settings: Settings, upload: Upload
    ) -> None:
        self.sessions, self.store, self.settings, self.upload = sessions, store, settings, upload
        self.buf = bytearray()

    async def take(self, chunk: bytes) -> None:
        if self.upload.offset + len(self.buf) + len(chunk) > self.upload.length:
            raise TooLarge("The body runs past the declared Upload-Length", upload_offset=self.upload.offset)
        self.buf += chunk
        if self.upload.offset == 0 and len(self.buf) >= min(HEAD, self.upload.length):
            await self._vet(bytes(self.buf[:HEAD]))
        while len(self.buf) >= CHUNK:
            await self._keep(bytes(self.buf[:CHUNK]))
            del self.buf[:CHUNK]

    async def flush(self) -> None:
        if self.buf and not (self.upload.offset == 0 and len(self.buf) < min(HEAD, self.upload.length)):
            data, self.buf = bytes(self.buf), bytearray()
            await self._keep(data)

    async def _vet(self, head: bytes) -> None:
        """Refuse a forbidden or oversize type from its first bytes, before any of it is kept."""
        found = sniff(head)
        if isinstance(found, str):
            await self._discard()
            raise TypeRefused(f"Refused: the content is {found}", detected=found)
        if not names_match(self.upload.filename, found):
            await self._discard()
            raise TypeMismatch(
                f"The content is {found.media_type}, not what its name says", detected=found.media_type
            )
        limit = limits(self.settings)[found.kind.value]
        if self.upload.length > limit:
            await self._discard()
            raise TooLarge(f"A {found.kind.value} is limited to {limit} bytes", kind=found.kind.value)

    async def _discard(self) -> None:
        self.buf = bytearray()
        async with self.sessions() as session:
            await drop(session, self.store, self.upload.id)
            await commit(session)

    async def _keep(self, data: bytes) -> None:
        file, inline = await self.store.hold(self.upload.id, data)
        start = self.upload.offset
        async with self.sessions() as session:
            moved = await session.execute(
                update(Upload)
                .where(col(Upload.id) == self.upload.id, col(Upload.offset) == start)
                .values(offset=start + len(data))
            )
            if affected(moved) != 1:
                await session.rollback()
                raise OffsetMismatch("Another request moved this upload on")
            session.add(Piece(upload_id=self.upload.id, offset=start, size=len(data), file=file, data=inline))
            await commit(session)
        self.upload.offset = start + len(data)


async def _own(
    session: AsyncSession,
    actor: Actor,
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    *,
    expired_ok: bool = False,
) -> Upload:
    await access.load(session, actor, consult_id)
    upload = (await session.execute(select(Upload).where(col(Upload.id) == upload_id))).scalar_one_or_none()
    if upload is None or upload.consult_id != consult_id or upload.uploader_id != actor.id:
        raise Hidden()  # an upload is its uploader's: anyone else's is as missing as none
    if not expired_ok and upload.status is UploadStatus.open and upload.expires_at < datetime.now(UTC):
        raise UploadGone()
    return upload


async def purge_expired(session: AsyncSession, store: Store, now: datetime, limit: int = 50) -> int:
    """Drop abandoned uploads past their expiry, a batch at a time (run on every upload created)."""
    query = (
        select(col(Upload.id))
        .where(col(Upload.status) == UploadStatus.open, col(Upload.expires_at) < now)
        .limit(limit)
    )
    ids = list((await session.execute(query)).scalars())
    for upload_id in ids:
        await drop(session, store, upload_id)
    return len(ids)


async def _audit(session: AsyncSession, actor: Actor, action: str, org_id: uuid.UUID, rid: uuid.UUID) -> None:
    await record(session, actor=actor, action=action, org_id=org_id, resource_type="upload", resource_id=rid)
