"""Uploads (tus 1.0.0: core, creation, termination, expiration) and the attachments they make."""

import uuid
from email.utils import format_datetime

from fastapi import APIRouter, Depends, Header, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from api.db import get_session
from api.errors import ClientGone
from api.openapi import problems
from api.settings import Settings
from auth.dependencies import require_user
from auth.principal import Actor
from consults.access import View
from consults.attachments import service, serving, uploads
from consults.attachments.dependencies import (
    TUS_VERSION,
    store,
    streaming_actor,
    tus,
)
from consults.attachments.models import Upload
from consults.attachments.schemas import AttachmentList, AttachmentOut, UploadOut
from consults.attachments.storage import Store

router = APIRouter(tags=["attachments"])
UPLOADS = "/consults/{consult_id}/uploads"
EXTENSIONS = "creation,termination,expiration"


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _tus_headers(upload: Upload) -> dict[str, str]:
    headers = {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Expires": format_datetime(upload.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }
    if upload.attachment_id:
        headers["Attachment-Id"] = str(upload.attachment_id)
    return headers


@router.options(UPLOADS, status_code=204, include_in_schema=False)
async def capabilities(request: Request) -> Response:
    """What this tus server speaks."""
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(uploads.largest(_settings(request))),
        },
    )


@router.post(UPLOADS, status_code=201, responses=problems(413, 415))
async def create_upload(
    consult_id: uuid.UUID,
    request: Request,
    upload_length: str | None = Header(None),
    upload_metadata: str | None = Header(None),
    actor: Actor = Depends(require_user),
    _tus: None = Depends(tus),
    files: Store = Depends(store),
    session: AsyncSession = Depends(get_session),
) -> Response:
    """Open a resumable upload; send its bytes with PATCH to the Location answered."""
    upload = await uploads.create(
        session,
        actor=actor,
        store=files,
        settings=_settings(request),
        consult_id=consult_id,
        upload_length=upload_length,
        upload_metadata=upload_metadata,
    )
    headers = _tus_headers(upload) | {"Location": f"{request.url.path.rstrip('/')}/{upload.id}"}
    return Response(status_code=201, headers=headers)


@router.head(UPLOADS + "/{upload_id}", include_in_schema=False)
async def upload_offset(
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    actor: Actor = Depends(require_user),
    _tus: None = Depends(tus),
    session: AsyncSession = Depends(get_session),
) -> Response:
    """How many bytes of the upload the server holds: resume from there."""
    upload = await uploads.status(session, actor=actor, consult_id=consult_id, upload_id=upload_id)
    return Response(status_code=200, headers=_tus_headers(upload))


@router.get(UPLOADS + "/{upload_id}", response_model=UploadOut, responses=problems(410))
async def get_upload(
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
):
    """The upload as JSON (its attachment once complete)."""
    return await uploads.status(session, actor=actor, consult_id=consult_id, upload_id=upload_id)


@router.patch(UPLOADS + "/{upload_id}", status_code=204, responses=problems(409, 410, 413, 415))
async def append(
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    request: Request,
    upload_offset: str | None = Header(None),
    content_type: str | None = Header(None),
    actor: Actor = Depends(streaming_actor),
    _tus: None = Depends(tus),
    files: Store = Depends(store),
) -> Response:
    """Append bytes at Upload-Offset, streamed; the upload becomes an attachment with its last byte."""
    try:
        upload, _ = await uploads.append(
            request.app.state.sessionmaker,
            actor=actor,
            store=files,
            settings=_settings(request),
            consult_id=consult_id,
            upload_id=upload_id,
            upload_offset=upload_offset,
            content_type=content_type,
            body=request.stream(),
        )
    except ClientDisconnect:
        raise ClientGone() from None
    return Response(status_code=204, headers=_tus_headers(upload))


@router.delete(UPLOADS + "/{upload_id}", status_code=204, responses=problems(410))
async def terminate(
    consult_id: uuid.UUID,
    upload_id: uuid.UUID,
    actor: Actor = Depends(require_user),
    _tus: None = Depends(tus),
    files: Store = Depends(store),
    session: AsyncSession = Depends(get_session),
) -> Response:
    """Drop an unfinished upload."""
    await uploads.terminate(session, actor=actor, store=files, consult_id=consult_id, upload_id=upload_id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})


@router.get("/consults/{consult_id}/attachments", response_model=AttachmentList)
async def list_attachments(
    consult_id: uuid.UUID, actor: Actor = Depends(require_user), session: AsyncSession = Depends(get_session)
):
    """The consult's attachments; a specialist only offered it sees how many and of which types."""
    rows, view = await service.listing(session, actor=actor, consult_id=consult_id)
    items = [AttachmentOut.model_validate(r) for r in rows] if view is View.full else None
    return AttachmentList(count=len(rows), types=service.types_of(rows), items=items)


@router.get("/consults/{consult_id}/attachments/{attachment_id}/content", responses=problems(416))
async def content(
    consult_id: uuid.UUID,
    attachment_id: uuid.UUID,
    range: str | None = Header(None),
    actor: Actor = Depends(require_user),
    files: Store = Depends(store),
    session: AsyncSession = Depends(get_session),
):
    """The attachment's bytes (one Range at a time for clips), as a download unless it is a vetted image."""
    row = await service.download(
        session, actor=actor, consult_id=consult_id, attachment_id=attachment_id, what="download"
    )
    return await serving.respond(
        files,
        row,
        sha256=row.sha256,
        size=row.size,
        media_type=row.media_type,
        filename=row.filename,
        range_header=range,
    )


@router.get("/consults/{consult_id}/attachments/{attachment_id}/thumbnail")
async def thumbnail(
    consult_id: uuid.UUID,
    attachment_id: uuid.UUID,
    actor: Actor = Depends(require_user),
    files: Store = Depends(store),
    session: AsyncSession = Depends(get_session),
):
    """A small JPEG of a photo, for the thread view."""
    row, sha256, size = await service.thumbnail(
        session, actor=actor, consult_id=consult_id, attachment_id=attachment_id
    )
    name = row.filename.rpartition(".")[0] + ".thumb.jpg"
    return await serving.respond(
        files, row, sha256=sha256, size=size, media_type="image/jpeg", filename=name, range_header=None
    )
