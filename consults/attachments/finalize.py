"""An upload's last byte is in: vet the whole file, make it a blob (re-encoded if an image), and
record the attachment, in one transaction that also drops the upload's pieces."""

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import affected, commit
from api.settings import Settings
from audit.service import record
from auth.principal import Actor
from consults.attachments import images
from consults.attachments.discard import drop
from consults.attachments.exceptions import Corrupt, ImageRefused, ImageTooLarge, OffsetMismatch, TypeRefused
from consults.attachments.models import Attachment, Blob, Kind, Piece, Upload, UploadStatus
from consults.attachments.sniff import HEAD, Sniffed, sniff
from consults.attachments.storage import Store
from consults.models import Consult

_UNSAFE = re.compile(r"[^\w.\- ]+")


async def run(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Actor,
    store: Store,
    settings: Settings,
    upload: Upload,
) -> Attachment:
    """The attachment made of a complete upload."""
    pieces = await _pieces(sessions, upload)
    found = sniff(await _head(store, pieces))
    if not isinstance(found, Sniffed):
        await _abandon(sessions, store, upload)
        raise TypeRefused(f"Refused: the content is {found}", detected=found)
    attachment = Attachment(
        consult_id=upload.consult_id,
        uploader_id=actor.id,
        org_id=actor.org_id,
        kind=found.kind,
        media_type=found.media_type,
        filename=safe_name(upload.filename, found.extension),
        size=upload.length,
        sha256="",
    )
    if found.kind is Kind.photo:
        blobs = await _photo(sessions, store, settings, upload, pieces, attachment)
    else:
        attachment.sha256 = await _digest(_stream(store, pieces))
        blobs = {attachment.sha256: upload.length}
        if not await _exists(sessions, attachment.sha256):
            await store.put(attachment.sha256, _stream(store, pieces))
    return await _record(sessions, store, actor, upload, attachment, blobs)


async def _photo(
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    settings: Settings,
    upload: Upload,
    pieces: list[Piece],
    attachment: Attachment,
) -> dict[str, int]:
    data = b"".join([await store.piece_bytes(p) for p in pieces])  # a photo is small enough (20 MB)
    try:
        clean = await asyncio.to_thread(
            images.clean, data, attachment.media_type, max_pixels=settings.attachments_max_pixels
        )
    except (ImageRefused, ImageTooLarge):
        await _abandon(sessions, store, upload)
        raise
    attachment.media_type, attachment.size = clean.media_type, len(clean.data)
    attachment.width, attachment.height = clean.width, clean.height
    attachment.sha256 = hashlib.sha256(clean.data).hexdigest()
    attachment.thumbnail_sha256 = hashlib.sha256(clean.thumbnail).hexdigest()
    if attachment.media_type == "image/jpeg":
        attachment.filename = safe_name(attachment.filename, "jpg")
    blobs = {attachment.sha256: len(clean.data), attachment.thumbnail_sha256: len(clean.thumbnail)}
    for sha, payload in ((attachment.sha256, clean.data), (attachment.thumbnail_sha256, clean.thumbnail)):
        if not await _exists(sessions, sha):
            await store.put(sha, _once(payload))
    return blobs


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    actor: Actor,
    upload: Upload,
    attachment: Attachment,
    blobs: dict[str, int],
) -> Attachment:
    async with sessions() as session:
        org_id = (
            await session.execute(select(col(Consult.org_id)).where(col(Consult.id) == upload.consult_id))
        ).scalar_one()
        done = await session.execute(
            update(Upload)
            .where(col(Upload.id) == upload.id, col(Upload.status) == UploadStatus.open)
            .values(status=UploadStatus.complete, attachment_id=attachment.id)
        )
        if affected(done) != 1:
            await session.rollback()
            raise OffsetMismatch("The upload was completed by another request")
        for sha, size in blobs.items():
            if (await session.get(Blob, sha)) is None:
                session.add(Blob(sha256=sha, size=size))
        session.add(attachment)
        await session.execute(delete(Piece).where(col(Piece.upload_id) == upload.id))
        await record(
            session,
            actor=actor,
            action="attachment.upload",
            org_id=org_id,
            resource_type="attachment",
            resource_id=attachment.id,
            reason=attachment.media_type,
        )
        await commit(session)
    await store.drop_upload(upload.id)
    upload.status, upload.attachment_id = UploadStatus.complete, attachment.id
    return attachment


async def _pieces(sessions: async_sessionmaker[AsyncSession], upload: Upload) -> list[Piece]:
    query = (
        select(col(Piece.id), col(Piece.upload_id), col(Piece.offset), col(Piece.size), col(Piece.file))
        .where(col(Piece.upload_id) == upload.id)
        .order_by(col(Piece.offset))
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
        await session.rollback()
    pieces = [Piece(id=r.id, upload_id=r.upload_id, offset=r.offset, size=r.size, file=r.file) for r in rows]
    seen = 0
    for piece in pieces:
        if piece.offset != seen:
            raise Corrupt("The upload's pieces do not join up")
        seen += piece.size
    if seen != upload.length:
        raise Corrupt("The upload's pieces do not add up to its length")
    return pieces


async def _head(store: Store, pieces: list[Piece]) -> bytes:
    head = b""
    for piece in pieces:
        head += await store.piece_bytes(piece)
        if len(head) >= HEAD:
            break
    return head[:HEAD]


async def _stream(store: Store, pieces: list[Piece]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield await store.piece_bytes(piece)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _digest(chunks: AsyncIterator[bytes]) -> str:
    digest = hashlib.sha256()
    async for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


async def _exists(sessions: async_sessionmaker[AsyncSession], sha256: str) -> bool:
    async with sessions() as session:
        found = await session.get(Blob, sha256)
        await session.rollback()
    return found is not None


async def _abandon(sessions: async_sessionmaker[AsyncSession], store: Store, upload: Upload) -> None:
    async with sessions() as session:
        await drop(session, store, upload.id)
        await commit(session)


def safe_name(filename: str, extension: str) -> str:
    """A plain file name (no path, no control or quote characters), ending in the content's extension."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = _UNSAFE.sub("_", base.rpartition(".")[0] or base).strip(" ._")[:120] or "attachment"
    return f"{stem}.{extension}"
