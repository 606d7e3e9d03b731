"""Call tokens, pre-call checks, and the signaling WebSocket."""

import uuid
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from auth.context import AuthContext
from auth.dependencies import auth_context, current_actor, require_user
from auth.principal import Actor
from signaling import service
from signaling.schemas import CallOut, CallTokenOut

router = APIRouter(tags=["calls"])


def _signaling_url(request: Request) -> str:
    """The public URL's host when there is one (its proxy routes the path); else the dedicated
    signaling port when there is one, else this API's own WebSocket route."""
    public = request.app.state.settings.public_url
    if public:
        origin = urlsplit(public)
        return f"{'wss' if origin.scheme == 'https' else 'ws'}://{origin.netloc}/api/v1/signaling"
    scheme = "wss" if request.url.scheme == "https" else "ws"
    port = request.app.state.settings.signaling_port
    netloc = f"{request.url.hostname}:{port}" if port else request.url.netloc
    return f"{scheme}://{netloc}/api/v1/signaling"


@router.post("/consults/{consult_id}/call-token", response_model=CallTokenOut, operation_id="createCallToken")
async def call_token(
    consult_id: uuid.UUID,
    request: Request,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """A short-lived, single-use token to join the consult's call, with the ICE servers to use."""
    return await service.call_token(
        session, ctx=ctx, actor=actor, consult_id=consult_id, signaling_url=_signaling_url(request)
    )


@router.get("/consults/{consult_id}/calls", response_model=Page[CallOut])
async def calls(
    consult_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
):
    """The consult's calls, newest first: start, end, and who attended when and for how long."""
    found = await service.call_records(session, actor=actor, consult_id=consult_id, page=page)
    return make_page(found, page, CallOut.of)


@router.post("/precall", response_model=CallTokenOut, operation_id="createPrecallToken")
async def precall(
    request: Request,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """A token for an echo room where a server-side peer reports round-trip time, loss and bitrate."""
    answer = await service.precall_token(session, ctx=ctx, actor=actor, signaling_url=_signaling_url(request))
    await request.app.state.precall.expect(answer["room"], user_id=str(actor.id))
    return answer


@router.websocket("/signaling")
async def signaling(ws: WebSocket) -> None:
    """First message {"type": "join", "token"} or {"type": "resume", "resume"}; then offer/answer/candidate."""
    await ws.app.state.signaling.handle(ws)
