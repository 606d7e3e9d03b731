"""Call tokens for a consult's participants, and pre-call echo rooms; who may join at join time; the
records of a consult's calls."""

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.service import covered_until, may_send
from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.context import AuthContext
from auth.exceptions import PermissionDenied
from auth.models import User
from auth.principal import Actor
from consults import access
from consults.exceptions import InvalidTransition
from consults.models import Consult, Participant, Status
from signaling.calls import tokens
from signaling.calls.control import room_of
from signaling.calls.ice import ice_servers
from signaling.core.admission import CallGrant
from signaling.models import Attendance, Call

CALLABLE = (Status.accepted, Status.in_session)


async def call_token(
    session: AsyncSession, *, ctx: AuthContext, actor: Actor, consult_id: uuid.UUID, signaling_url: str
) -> dict:
    """A participant of a consult that may hold a call gets a token for its room, with ICE servers."""
    consult, _ = await access.load(session, actor, consult_id)
    role = await _role(session, consult, actor)
    if role is None:
        raise PermissionDenied("Only the consult's participants join its calls")
    not_after = await _agreement_end(session, consult, actor.org_id)
    if consult.status not in CALLABLE:
        raise InvalidTransition(
            consult.status, "Calls are held once a consult is accepted and until it closes"
        )
    token, exp = tokens.issue(
        ctx,
        user_id=actor.id,
        org_id=actor.org_id,
        room=room_of(consult.id),
        consult_id=consult.id,
        session_id=actor.session_id,
        not_after=not_after,
        role=role,
        name=await _name(session, actor),
    )
    await record(
        session,
        actor=actor,
        action="call.token",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return _answer(ctx, actor, token, room_of(consult.id), signaling_url, exp)


async def precall_token(session: AsyncSession, *, ctx: AuthContext, actor: Actor, signaling_url: str) -> dict:
    """A token for a fresh echo room where a server-side peer answers."""
    room = f"precall-{uuid.uuid4().hex}"
    token, exp = tokens.issue(
        ctx,
        user_id=actor.id,
        org_id=actor.org_id,
        room=room,
        consult_id=None,
        session_id=actor.session_id,
        role="precall",
        name=await _name(session, actor),
    )
    return _answer(ctx, actor, token, room, signaling_url, exp)


def _answer(ctx: AuthContext, actor: Actor, token: str, room: str, url: str, exp: int) -> dict:
    return {
        "token": token,
        "room": room,
        "signaling_url": ctx.settings.signaling_url or url,
        "ice_servers": ice_servers(ctx.settings, str(actor.id), int(time.time())),
        "expires_at": datetime.fromtimestamp(exp, UTC),
    }


async def _role(session: AsyncSession, consult: Consult, actor: Actor) -> str | None:
    """The actor's part in the consult's calls (None: no participant)."""
    if actor.id == consult.requester_id:
        return "requester"
    if actor.id == consult.assigned_to:
        return "assignee"
    query = select(col(Participant.role)).where(
        col(Participant.consult_id) == consult.id, col(Participant.user_id) == actor.id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _name(session: AsyncSession, actor: Actor) -> str:
    user = await session.get(User, actor.id)
    return (user.display_name or user.username) if user else ""


async def may_join(session: AsyncSession, *, grant: CallGrant) -> bool:
    """At join time, the consult must still allow calls and the user still be active and a participant.

    One autocommit SELECT (no BEGIN/ROLLBACK round trips): this sits on every join's path."""
    if grant.consult_id is None:
        return True
    cid, uid = uuid.UUID(grant.consult_id), uuid.UUID(grant.user_id)
    invited = (
        select(col(Participant.id))
        .where(col(Participant.consult_id) == cid, col(Participant.user_id) == uid)
        .exists()
    )
    query = (
        select(
            col(Consult.status),
            col(Consult.org_id),
            col(Consult.specialty),
            col(Consult.requester_id),
            col(Consult.assigned_to),
            col(User.is_active),
            col(User.org_id),
            invited,
        )
        .select_from(Consult)
        .join(User, col(User.id) == uid)
        .where(col(Consult.id) == cid)
    )
    conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (await conn.execute(query)).first()
    if row is None:
        return False
    status, org_id, specialty, requester, assignee, active, user_org, is_invited = row
    if not active or status not in CALLABLE or uid not in (requester, assignee) and not is_invited:
        return False
    return user_org == org_id or await may_send(
        session, requesting_org_id=org_id, providing_org_id=user_org, specialty=specialty
    )


async def _agreement_end(session: AsyncSession, consult: Consult, org_id: uuid.UUID) -> int | None:
    """Someone of another org takes part only while an active agreement covers the consult: until when
    (epoch seconds; None within one org)? The token stops there, so the ledger need not watch agreements
    run out."""
    if org_id == consult.org_id:
        return None
    until = await covered_until(
        session, requesting_org_id=consult.org_id, providing_org_id=org_id, specialty=consult.specialty
    )
    if until is None:
        raise PermissionDenied("No active agreement lets your organization join this consult's calls")
    return int(until.timestamp())


async def call_records(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, page: PageParams
) -> list[tuple[Call, list[tuple[Attendance, User]]]]:
    """The consult's calls, newest first, each with who attended when; for those who see all of it."""
    consult, _ = await access.load(session, actor, consult_id)
    query = (
        select(Call)
        .where(col(Call.consult_id) == consult.id)
        .order_by(col(Call.started_at).desc(), col(Call.id))
    )
    found = list((await session.execute(query.limit(page.limit + 1).offset(page.offset))).scalars())
    rows = (
        await session.execute(
            select(Attendance, User)
            .join(User, col(User.id) == col(Attendance.user_id))
            .where(col(Attendance.call_id).in_([c.id for c in found]))
            .order_by(col(Attendance.joined_at), col(Attendance.id))
        )
    ).all()
    await record(
        session,
        actor=actor,
        action="call.read",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return [(c, [(a, u) for a, u in rows if a.call_id == c.id]) for c in found]
