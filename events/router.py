"""The live event WebSocket: authenticate in the first message, replay what was missed, then stream."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from api.errors import Unauthenticated
from api.metrics import EVENTS_SOCKETS
from events.bus import Subscription
from events.control import SESSIONS, ends, rescopes
from events.models import own_channels
from events.service import missed
from events.wire import AuthMessage

log = logging.getLogger("liaison.events")
# (session, *, ctx, token) -> the caller it names (auth.principal.Actor), or raises Unauthenticated
Authenticate = Callable[..., Awaitable]
# (session, actor, events) -> those of the events the actor may read now (consults.access.admit)
Admit = Callable[..., Awaitable[list[dict]]]
# actor -> the channels it listens on (consults.notify.channels_of)
Channels = Callable[[Any], list[str]]
AUTH_TIMEOUT = 5.0
POLICY_VIOLATION = 1008
TRY_AGAIN = 1013  # RFC 6455: the client may reconnect later (with its last event id: nothing is lost)


def build(authenticate: Authenticate, admit: Admit, channels: Channels = own_channels) -> APIRouter:
    """The socket's route, naming callers with `authenticate`, deciding what they may read with
    `admit` and where they listen with `channels`: events sit below auth and consults, so liaison.app
    hands them in."""
    router = APIRouter()

    @router.websocket("/events")
    async def events_socket(ws: WebSocket) -> None:
        await _serve(ws, authenticate, admit, channels)

    return router


@dataclass
class Reader:
    """One socket's caller, re-read when their roles change, and the token that names them."""

    ws: WebSocket
    authenticate: Authenticate
    admit: Admit
    token: str
    actor: Any
    channels_of: Channels = own_channels

    @property
    def channels(self) -> list[str]:
        return self.channels_of(self.actor)

    async def reload(self) -> bool:
        """Who the token names now; False if it names nobody any more (the socket then closes)."""
        try:
            async with self.ws.app.state.sessionmaker() as session:
                self.actor = await self.authenticate(session, ctx=self.ws.app.state.auth, token=self.token)
        except Unauthenticated:
            return False
        return True

    async def readable(self, events: list[dict]) -> list[dict]:
        """Decided when sending, not when subscribing: an agreement may have ended since."""
        async with self.ws.app.state.sessionmaker() as session:
            return await self.admit(session, self.actor, events)


async def _serve(ws: WebSocket, authenticate: Authenticate, admit: Admit, channels: Channels) -> None:
    """First message {"type": "auth", "token", "last_event_id"?}; then {"type": "event", ...} frames."""
    await ws.accept()
    hello = await _authenticate(ws, authenticate)
    if hello is None:
        return
    actor, token, last = hello
    reader = Reader(ws, authenticate, admit, token, actor, channels)
    bus = ws.app.state.bus
    sub = bus.subscribe(reader.channels + [SESSIONS])
    EVENTS_SOCKETS.inc()
    try:
        await ws.send_json({"type": "ready", "user_id": str(actor.id), "channels": reader.channels})
        await _pump(ws, sub, reader, last)
    except (WebSocketDisconnect, RuntimeError):
        pass
    except Exception as exc:  # the database, away while deciding what may be sent: nothing is sent
        log.warning("events socket closed: access could not be checked (%s)", type(exc).__name__)
        with contextlib.suppress(Exception):
            await ws.close(TRY_AGAIN, "Reconnect with the last event id")
    finally:
        EVENTS_SOCKETS.dec()
        bus.unsubscribe(sub)


async def _authenticate(ws: WebSocket, authenticate: Authenticate):
    try:
        raw = await asyncio.wait_for(ws.receive_text(), timeout=AUTH_TIMEOUT)
        msg = AuthMessage.model_validate(json.loads(raw))
        async with ws.app.state.sessionmaker() as session:
            actor = await authenticate(session, ctx=ws.app.state.auth, token=msg.token)
        return actor, msg.token, msg.last_event_id
    except (TimeoutError, ValueError, ValidationError, Unauthenticated, WebSocketDisconnect) as exc:
        code = "invalid_token" if isinstance(exc, Unauthenticated) else "auth_required"
        with contextlib.suppress(Exception):
            await ws.send_json(
                {"type": "error", "code": code, "message": 'Send {"type": "auth", "token"} first'}
            )
            await ws.close(POLICY_VIOLATION)
        return None


async def _pump(ws: WebSocket, sub: Subscription, reader: Reader, last: int | None) -> None:
    """Write events as they come, replaying from the log when reconnecting or after falling behind.

    Positions grow in commit order, so one high-water mark tells what this socket has been sent:
    a live event at or below it came through a replay already."""
    listener = asyncio.create_task(_read(ws))
    high = 0  # without a last id: only what is delivered from now on, all of it
    try:
        if last is not None:
            high = await _replay(ws, reader, last)
        while not listener.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, listener}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event["channel"] == SESSIONS:
                if not await _obey(ws, sub, reader, event["data"]):
                    break
                continue
            if sub.lagging:
                sub.lagging = False
                _drain(sub)
                high = await _replay(ws, reader, high)
            elif event["id"] > high:
                for readable in await reader.readable([event]):
                    await ws.send_json(readable)
                high = event["id"]
    finally:
        listener.cancel()


async def _obey(ws: WebSocket, sub: Subscription, reader: Reader, order: dict) -> bool:
    """Carry out an order heard on the control channel; False once the socket is closed."""
    actor = reader.actor
    user_id, session_id = str(actor.id), str(actor.session_id) if actor.session_id else None
    if rescopes(order, user_id=user_id):
        if await reader.reload():
            ws.app.state.bus.rescope(sub, reader.channels + [SESSIONS])
            await ws.send_json({"type": "rescoped", "channels": reader.channels})
            return True
        order = {"reason": "Your sign-in no longer names an active user"}
    elif not ends(order, user_id=user_id, session_id=session_id):
        return True
    await ws.send_json({"type": "error", "code": "session_ended", "message": order["reason"]})
    await ws.close(POLICY_VIOLATION)
    return False


async def _replay(ws: WebSocket, reader: Reader, after: int) -> int:
    """Send the channels' events after `after` that the caller may read now; the last position read."""
    async with ws.app.state.sessionmaker() as session:
        while batch := await missed(session, channels=reader.channels, after=after):
            wired = [e.wire() for e in batch]  # before admit: its rollback expires the rows
            after = wired[-1]["id"] or after
            for event in await reader.admit(session, reader.actor, wired):
                await ws.send_json(event)
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
