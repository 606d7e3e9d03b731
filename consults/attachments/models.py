"""Attachments, the uploads that make them, and the bytes they keep (content-addressed by sha256)."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from api.models import created_field, enum_field, id_field


class Kind(StrEnum):
    photo = "photo"  # re-encoded, metadata stripped
    clip = "clip"  # audio or video, stored as sent
    document = "document"  # PDF, stored as sent
    opaque = "opaque"  # DICOM: stored and served as-is


class UploadStatus(StrEnum):
    open = "open"
    complete = "complete"


class Blob(SQLModel, table=True):
    """Bytes stored once per digest, wherever the store keeps them."""

    __tablename__ = "attachment_blobs"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    created_at: datetime = created_field()


class BlobChunk(SQLModel, table=True):
    """A blob's bytes in the database store, piece by piece, in order of `start`."""

    __tablename__ = "attachment_chunks"
    __table_args__ = (UniqueConstraint("sha256", "start"),)
    id: uuid.UUID = id_field()
    sha256: str = Field(max_length=64, index=True)
    start: int
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Upload(SQLModel, table=True):
    """A tus upload: its length was declared when it was created; `offset` is what the server holds."""

    __tablename__ = "attachment_uploads"
    __table_args__ = (Index("ix_attachment_uploads_expires", "status", "expires_at"),)
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    uploader_id: uuid.UUID = Field(foreign_key="users.id")
    length: int
    offset: int = 0
    filename: str = Field(default="", max_length=255)
    status: UploadStatus = enum_field(UploadStatus, UploadStatus.open)
    attachment_id: uuid.UUID | None = None
    created_at: datetime = created_field()
    expires_at: datetime


class Piece(SQLModel, table=True):
    """Bytes of an unfinished upload from `offset`: inline (database store) or in a file (disk store)."""

    __tablename__ = "attachment_pieces"
    __table_args__ = (UniqueConstraint("upload_id", "offset"),)
    id: uuid.UUID = id_field()
    upload_id: uuid.UUID = Field(foreign_key="attachment_uploads.id", index=True)
    offset: int
    size: int
    file: str | None = Field(default=None, max_length=255)
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class Attachment(SQLModel, table=True):
    __tablename__ = "attachments"
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    message_id: uuid.UUID | None = Field(default=None, foreign_key="consult_messages.id", index=True)
    uploader_id: uuid.UUID = Field(foreign_key="users.id")
    org_id: uuid.UUID = Field(foreign_key="organizations.id")
    kind: Kind = enum_field(Kind, Kind.opaque)
    media_type: str = Field(max_length=64)
    filename: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64)
    width: int | None = None
    height: int | None = None
    thumbnail_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_field()
