"""Where attachment bytes live: the local disk (embedded) or PostgreSQL chunk rows (scaled).

Both keep a blob under its sha256 and check that digest on every read before a byte is served.
Unfinished uploads are pieces (models.Piece): their rows say which bytes the server holds, and
their bytes sit beside the blob's, in a file or inline in the row.
"""

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import commit
from api.settings import Settings
from consults.attachments.exceptions import Corrupt
from consults.attachments.models import BlobChunk, Piece

CHUNK = 1024 * 1024  # a blob's unit of storage and of reading: a megabyte in memory at most


class Store(Protocol):
    name: str

    async def hold(self, upload_id: uuid.UUID, data: bytes) -> tuple[str | None, bytes | None]:
        """Keep a piece's bytes: (file, None) on disk, (None, data) to store in the piece row."""
        ...

    async def piece_bytes(self, piece: Piece) -> bytes: ...

    async def drop_upload(self, upload_id: uuid.UUID) -> None: ...

    async def put(self, sha256: str, chunks: AsyncIterator[bytes]) -> None: ...

    def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a blob, as stored (the caller checks the digest first: verify)."""
        ...


async def verify(store: Store, sha256: str, size: int) -> None:
    """Read the whole blob and compare its digest; a mismatch is refused, never served."""
    digest = hashlib.sha256()
    async for chunk in store.read(sha256, 0, size):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise Corrupt()


class DiskStore:
    """Blobs under <root>/blobs/ab/abcd…; pieces under <root>/uploads/<upload id>/."""

    name = "disk"

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    async def hold(self, upload_id: uuid.UUID, data: bytes) -> tuple[str | None, bytes | None]:
        name = uuid.uuid4().hex  # never the offset: a retried piece must not overwrite a held one
        await asyncio.to_thread(self._write, self.root / "uploads" / upload_id.hex / name, data)
        return name, None

    async def piece_bytes(self, piece: Piece) -> bytes:
        path = self.root / "uploads" / piece.upload_id.hex / (piece.file or "")
        return await asyncio.to_thread(path.read_bytes)

    async def drop_upload(self, upload_id: uuid.UUID) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / "uploads" / upload_id.hex, True)

    async def put(self, sha256: str, chunks: AsyncIterator[bytes]) -> None:
        final = self._blob(sha256)
        tmp = final.with_name(f".{sha256}.{uuid.uuid4().hex}")
        await asyncio.to_thread(tmp.parent.mkdir, parents=True, exist_ok=True)
        with open(tmp, "wb") as out:  # noqa: ASYNC230 (each write goes through a thread below)
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(os.fsync, out.fileno())
        await asyncio.to_thread(os.replace, tmp, final)  # atomic: a reader sees all of it or none

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        with open(self._blob(sha256), "rb") as f:  # noqa: ASYNC230 (reads go through a thread)
            await asyncio.to_thread(f.seek, start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    raise Corrupt()  # shorter than recorded
                left -= len(chunk)
                yield chunk

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


class DatabaseStore:
    """Blobs as rows of at most a megabyte (attachment_chunks), pieces inline in their rows: every
    node that reaches the database serves every attachment."""

    name = "database"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def hold(self, upload_id: uuid.UUID, data: bytes) -> tuple[str | None, bytes | None]:
        return None, data

    async def piece_bytes(self, piece: Piece) -> bytes:
        if piece.data is not None:
            return piece.data
        async with self.sessions() as session:
            data = (await session.execute(select(col(Piece.data)).where(col(Piece.id) == piece.id))).scalar()
            await session.rollback()
        return data or b""

    async def drop_upload(self, upload_id: uuid.UUID) -> None:
        return None  # the pieces' rows go with the upload's

    async def put(self, sha256: str, chunks: AsyncIterator[bytes]) -> None:
        async with self.sessions() as session:
            await session.execute(delete(BlobChunk).where(col(BlobChunk.sha256) == sha256))  # a torn try
            await commit(session)
        start = 0
        async for chunk in _rechunk(chunks):
            async with self.sessions() as session:  # one short transaction a chunk: no long write lock
                session.add(BlobChunk(sha256=sha256, start=start, size=len(chunk), data=chunk))
                await commit(session)
            start += len(chunk)

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        query = (
            select(col(BlobChunk.id), col(BlobChunk.start), col(BlobChunk.size))
            .where(col(BlobChunk.sha256) == sha256, col(BlobChunk.start) < end)
            .order_by(col(BlobChunk.start))
        )
        async with self.sessions() as session:
            rows = [r for r in (await session.execute(query)).all() if r.start + r.size > start]
            await session.rollback()
        seen = rows[0].start if rows else start
        for row in rows:
            if row.start != seen:
                raise Corrupt()  # a gap: a chunk is missing
            async with self.sessions() as session:
                data = (
                    await session.execute(select(col(BlobChunk.data)).where(col(BlobChunk.id) == row.id))
                ).scalar_one()
                await session.rollback()
            seen += len(data)
            yield data[max(0, start - row.start) : end - row.start]
        if seen < end:
            raise Corrupt()


async def _rechunk(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= CHUNK:
            yield bytes(buf[:CHUNK])
            del buf[:CHUNK]
    if buf:
        yield bytes(buf)


def make_store(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Store:
    """The store the settings name; "auto" is the disk with SQLite and the database with PostgreSQL."""
    kind = settings.attachments_store
    if kind == "auto":
        kind = "disk" if settings.database_url.startswith("sqlite") else "database"
    return DiskStore(settings.attachments_path) if kind == "disk" else DatabaseStore(sessions)
