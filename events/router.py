"""The live event WebSocket: authenticate in the first message, replay what was missed, then stream."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import Unauthenticated
from events.bus import Subscription
from events.control import SESSIONS, ends
from events.models import channel_of_role, channel_of_user
from events.service import missed

log = logging.getLogger("liaison.events")
# (session, *, ctx, token) -> the caller it names (auth.principal.Actor), or raises Unauthenticated
Authenticate = Callable[..., Awaitable]
AUTH_TIMEOUT = 5.0
POLICY_VIOLATION = 1008
ORG_ROLES = frozenset({"coordinator"})  # roles whose members share their org's channel


class AuthMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(pattern="^auth$")
    token: str = Field(max_length=8192)
    last_event_id: int | None = Field(default=None, ge=0)


def build(authenticate: Authenticate) -> APIRouter:
    """The socket's route, naming callers with `authenticate`: events sit below auth, so liaison.app
    hands auth's in (auth.identity.authenticate)."""
    router = APIRouter()

    @router.websocket("/events")
    async def events_socket(ws: WebSocket) -> None:
        await _serve(ws, authenticate)

    return router


async def _serve(ws: WebSocket, authenticate: Authenticate) -> None:
    """First message {"type": "auth", "token", "last_event_id"?}; then {"type": "event", ...} frames."""
    await ws.accept()
    hello = await _authenticate(ws, authenticate)
    if hello is None:
        return
    actor, last = hello
    bus = ws.app.state.bus
    channels = [channel_of_user(actor.id)] + [
        channel_of_role(actor.org_id, r) for r in sorted(actor.roles & ORG_ROLES)
    ]
    sub = bus.subscribe(channels + [SESSIONS])
    try:
        await ws.send_json({"type": "ready", "user_id": str(actor.id), "channels": channels})
        await _pump(ws, sub, channels, actor, last)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        bus.unsubscribe(sub)


async def _authenticate(ws: WebSocket, authenticate: Authenticate):
    try:
        raw = await asyncio.wait_for(ws.receive_text(), timeout=AUTH_TIMEOUT)
        msg = AuthMessage.model_validate(json.loads(raw))
        async with ws.app.state.sessionmaker() as session:
            actor = await authenticate(session, ctx=ws.app.state.auth, token=msg.token)
        return actor, msg.last_event_id
    except (TimeoutError, ValueError, ValidationError, Unauthenticated, WebSocketDisconnect) as exc:
        code = "invalid_token" if isinstance(exc, Unauthenticated) else "auth_required"
        with contextlib.suppress(Exception):
            await ws.send_json(
                {"type": "error", "code": code, "message": 'Send {"type": "auth", "token"} first'}
            )
            await ws.close(POLICY_VIOLATION)
        return None


async def _pump(ws: WebSocket, sub: Subscription, channels: list[str], actor, last: int | None) -> None:
    """Write events as they come, replaying from the log when reconnecting or after falling behind.

    Positions grow in commit order, so one high-water mark tells what this socket has been sent:
    a live event at or below it came through a replay already."""
    reader = asyncio.create_task(_read(ws))
    high = 0  # without a last id: only what is delivered from now on, all of it
    try:
        if last is not None:
            high = await _replay(ws, channels, last)
        while not reader.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event["channel"] == SESSIONS:
                if ends(
                    event["data"],
                    user_id=str(actor.id),
                    session_id=str(actor.session_id) if actor.session_id else None,
                ):
                    await ws.send_json(
                        {"type": "error", "code": "session_ended", "message": event["data"]["reason"]}
                    )
                    await ws.close(POLICY_VIOLATION)
                    break
                continue
            if sub.lagging:
                sub.lagging = False
                _drain(sub)
                high = await _replay(ws, channels, high)
            elif event["id"] > high:
                await ws.send_json(event)
                high = event["id"]
    finally:
        reader.cancel()


async def _replay(ws: WebSocket, channels: list[str], after: int) -> int:
    """Send the channels' events after `after`; the last position sent."""
    async with ws.app.state.sessionmaker() as session:
        while batch := await missed(session, channels=channels, after=after):
            for event in batch:
                await ws.send_json(event.wire())
            after = batch[-1].pos or after
    return after


async def _read(ws: WebSocket) -> None:
    """Answer pings; return when the client goes away."""
    while True:
        raw = await ws.receive_text()
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(raw).get("type") == "ping":
                await ws.send_json({"type": "pong"})


def _drain(sub: Subscription) -> None:
    while not sub.queue.empty():
        sub.queue.get_nowait()
