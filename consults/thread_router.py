"""The consult's thread and who is in it: messages, read receipts, invited participants."""

import uuid

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from auth.dependencies import current_actor, require_user
from auth.principal import Actor
from consults import messages, participants, receipts
from consults.attachments.models import Attachment
from consults.attachments.schemas import AttachmentOut
from consults.models import Message
from consults.schemas import MessageIn, MessageOut, ParticipantIn, ParticipantOut, ReadIn, ReadOut

router = APIRouter(tags=["consults"])


@router.post("/consults/{consult_id}/messages", response_model=MessageOut, status_code=201)
async def post_message(
    consult_id: uuid.UUID,
    body: MessageIn,
    actor: Actor = Depends(require_user),
    idempotency_key: str | None = Header(None, max_length=200),
    session: AsyncSession = Depends(get_session),
):
    """Add to the consult's thread, with attachments uploaded before. A retry with the same Idempotency-Key is stored once."""
    message, files, created = await messages.post(
        session,
        actor=actor,
        consult_id=consult_id,
        body=body.body,
        attachment_ids=body.attachment_ids,
        idempotency_key=idempotency_key,
    )
    out = _message(message, files)
    if created:
        return out
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Idempotent-Replayed": "true"})


def _message(message: Message, files: list[Attachment]) -> MessageOut:
    return MessageOut.model_validate(message).model_copy(
        update={"attachments": [AttachmentOut.model_validate(f) for f in files]}
    )


@router.get("/consults/{consult_id}/messages", response_model=Page[MessageOut])
async def list_messages(
    consult_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
):
    """The consult's thread, oldest first."""
    rows = await messages.thread(session, actor=actor, consult_id=consult_id, page=page)
    return make_page(rows, page, lambda r: _message(*r))


@router.put("/consults/{consult_id}/reads/me", response_model=ReadOut)
async def mark_read(
    consult_id: uuid.UUID,
    body: ReadIn,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
):
    """I have read the thread up to this message (a receipt never moves back)."""
    return await receipts.mark(session, actor=actor, consult_id=consult_id, message_id=body.message_id)


@router.get("/consults/{consult_id}/reads", response_model=list[ReadOut])
async def list_reads(
    consult_id: uuid.UUID, actor: Actor = Depends(require_user), session: AsyncSession = Depends(get_session)
):
    """Who has read the thread, up to which message."""
    return await receipts.receipts(session, actor=actor, consult_id=consult_id)


@router.post("/consults/{consult_id}/participants", response_model=ParticipantOut, status_code=201)
async def invite(
    consult_id: uuid.UUID,
    body: ParticipantIn,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
):
    """Invite an interpreter or a second specialist into the consult's calls."""
    return await participants.invite(
        session, actor=actor, consult_id=consult_id, user_id=body.user_id, role=body.role
    )
