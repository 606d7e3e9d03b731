"""Call tokens for a consult's participants, pre-call echo rooms, and the record of each call."""

import time
import uuid
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agreements.service import may_send
from api.db import commit
from audit.service import record
from auth.context import AuthContext
from auth.exceptions import PermissionDenied
from auth.models import User
from auth.principal import Actor
from consults import access
from consults.access import is_invited
from consults.notify import people
from consults.exceptions import InvalidTransition
from consults.models import Consult, Participant, Status
from events.service import emit
from signaling import tokens
from signaling.control import room_of
from signaling.ice import ice_servers
from signaling.models import Attendance, Call

CALLABLE = (Status.accepted, Status.in_session)


async def call_token(session: AsyncSession, *, ctx: AuthContext, actor: Actor, consult_id: uuid.UUID,
                     signaling_url: str) -> dict:
    """A participant of a consult that may hold a call gets a token for its room, with ICE servers."""
    consult, _ = await access.load(session, actor, consult_id)
    if not await _participant(session, consult, actor):
        raise PermissionDenied("Only the consult's participants join its calls")
    if not await _boundary_open(session, consult, actor.org_id):
        raise PermissionDenied("No active agreement lets your organization join this consult's calls")
    if consult.status not in CALLABLE:
        raise InvalidTransition(consult.status, "Calls are held once a consult is accepted and until it closes")
    token, exp = tokens.issue(ctx, user_id=actor.id, org_id=actor.org_id, room=room_of(consult.id), consult_id=consult.id)
    await record(session, actor=actor, action="call.token", org_id=consult.org_id, resource_type="consult",
                 resource_id=consult.id)
    await commit(session)
    return _answer(ctx, actor, token, room_of(consult.id), signaling_url, exp)


async def precall_token(*, ctx: AuthContext, actor: Actor, signaling_url: str) -> dict:
    """A token for a fresh echo room where a server-side peer answers."""
    room = f"precall-{uuid.uuid4().hex}"
    token, exp = tokens.issue(ctx, user_id=actor.id, org_id=actor.org_id, room=room, consult_id=None)
    return _answer(ctx, actor, token, room, signaling_url, exp)


def _answer(ctx: AuthContext, actor: Actor, token: str, room: str, url: str, exp: int) -> dict:
    return {"token": token, "room": room, "signaling_url": ctx.settings.signaling_url or url,
            "ice_servers": ice_servers(ctx.settings, str(actor.id), int(time.time())),
            "expires_at": datetime.fromtimestamp(exp, timezone.utc)}


async def _participant(session: AsyncSession, consult: Consult, actor: Actor) -> bool:
    return actor.id in (consult.requester_id, consult.assigned_to) or await is_invited(session, consult.id, actor.id)


async def may_join(session: AsyncSession, *, grant: tokens.CallGrant) -> bool:
    """At join time, the consult must still allow calls and the user still be active and a participant.

    One autocommit SELECT (no BEGIN/ROLLBACK round trips): this sits on every join's path."""
    if grant.consult_id is None:
        return True
    cid, uid = uuid.UUID(grant.consult_id), uuid.UUID(grant.user_id)
    invited = select(Participant.id).where(Participant.consult_id == cid, Participant.user_id == uid).exists()
    query = (select(Consult.status, Consult.org_id, Consult.specialty, Consult.requester_id, Consult.assigned_to,
                    User.is_active, User.org_id, invited)
             .select_from(Consult).join(User, User.id == uid).where(Consult.id == cid))
    conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (await conn.execute(query)).first()
    if row is None:
        return False
    status, org_id, specialty, requester, assignee, active, user_org, is_invited = row
    if not active or status not in CALLABLE or uid not in (requester, assignee) and not is_invited:
        return False
    return user_org == org_id or await may_send(session, requesting_org_id=org_id, providing_org_id=user_org,
                                                specialty=specialty)


async def _boundary_open(session: AsyncSession, consult: Consult, org_id: uuid.UUID) -> bool:
    """Someone of another org takes part only while an active agreement covers the consult."""
    return await may_send(session, requesting_org_id=consult.org_id, providing_org_id=org_id, specialty=consult.specialty)


async def joined(session: AsyncSession, *, grant: tokens.CallGrant, peer_id: str) -> None:
    """Record attendance; the first peer in starts a call (and puts the consult in session)."""
    if grant.consult_id is None:
        return
    consult = (await session.execute(select(Consult).where(Consult.id == uuid.UUID(grant.consult_id))
                                     .with_for_update())).scalar_one()
    now = datetime.now(timezone.utc)
    call = (await session.execute(select(Call).where(Call.consult_id == consult.id, Call.ended_at.is_(None)))).scalar_one_or_none()
    if call is None:
        call = Call(consult_id=consult.id, room=room_of(consult.id), started_at=now)
        session.add(call)
        await session.flush()
        await emit(session, user_ids=people(consult), type="call.started", consult_id=consult.id,
                   data={"call_id": str(call.id)})
    session.add(Attendance(call_id=call.id, user_id=uuid.UUID(grant.user_id), peer_id=peer_id, joined_at=now))
    if consult.status == Status.accepted:
        consult.status, consult.updated_at = Status.in_session, now
    if str(consult.assigned_to) == grant.user_id and consult.first_response_at is None:
        consult.first_response_at = now
    await commit(session)


async def left(session: AsyncSession, *, consult_id: str | None, peer_id: str) -> None:
    """Close the peer's attendance; the last one out ends the call."""
    if consult_id is None:
        return
    consult = (await session.execute(select(Consult).where(Consult.id == uuid.UUID(consult_id)).with_for_update())).scalar_one()
    now = datetime.now(timezone.utc)
    row = (await session.execute(select(Attendance).where(Attendance.peer_id == peer_id, Attendance.left_at.is_(None)))).scalar_one_or_none()
    if row is None:
        return
    row.left_at = now
    await session.flush()
    open_ = (await session.execute(select(Attendance.id).where(Attendance.call_id == row.call_id,
                                                                Attendance.left_at.is_(None)))).first()
    if open_ is None:
        call = await session.get(Call, row.call_id)
        call.ended_at = now
        await emit(session, user_ids=people(consult), type="call.ended", consult_id=consult.id,
                   data={"call_id": str(call.id), "seconds": round((now - call.started_at).total_seconds(), 1)})
    await commit(session)
