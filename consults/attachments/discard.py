"""Dropping an unfinished upload: its rows at once, its files once that commits."""

import uuid

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import after_commit
from consults.attachments.models import Piece, Upload
from consults.attachments.storage import Store


async def drop(session: AsyncSession, store: Store, upload_id: uuid.UUID) -> None:
    """Delete the upload and its pieces in the caller's transaction; their files after it commits."""
    await session.execute(delete(Piece).where(col(Piece.upload_id) == upload_id))
    await session.execute(delete(Upload).where(col(Upload.id) == upload_id))

    async def files(_: AsyncSession) -> None:
        await store.drop_upload(upload_id)

    after_commit(session, files)  # not before: rows that outlive a failed commit keep their bytes
