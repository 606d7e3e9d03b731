"""Wire shapes of attachments and uploads."""

import uuid
from datetime import datetime

from pydantic import BaseModel

from api.schemas import Out
from consults.attachments.models import Kind


class AttachmentOut(Out):
    id: uuid.UUID
    consult_id: uuid.UUID
    message_id: uuid.UUID | None
    uploader_id: uuid.UUID
    kind: Kind
    media_type: str
    filename: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: datetime


class AttachmentList(BaseModel):
    """Everyone who may see the consult sees how many and of which types; its full view, the items."""

    count: int
    types: dict[str, int]
    items: list[AttachmentOut] | None


class UploadOut(Out):
    id: uuid.UUID
    consult_id: uuid.UUID
    length: int
    offset: int
    filename: str
    expires_at: datetime
    attachment_id: uuid.UUID | None
