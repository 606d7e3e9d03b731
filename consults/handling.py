"""After routing: coordinators assign by hand, the assignee completes, the requester rates."""

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from agreements.service import may_send
from api.db import commit
from audit.service import record
from auth.exceptions import Hidden, PermissionDenied
from auth.models import User
from auth.principal import Actor
from consults import access, capacity, transitions
from consults.exceptions import InvalidTransition, NotEligible
from consults.lifecycle import Event, require, transition
from consults.models import Consult, Status


async def assign(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, specialist_id: uuid.UUID
) -> Consult:
    """A coordinator of the requesting org assigns (or reassigns) to a specialist it may send to."""
    profile = await capacity.lock_profile(session, specialist_id)  # before the consult, as accept does
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if consult.org_id != actor.org_id:
        raise Hidden()
    require(consult, Event.assign)  # a 409 before a 422 about the specialist
    specialist = await session.get(User, specialist_id)
    if (
        specialist is None
        or "specialist" not in specialist.roles
        or not specialist.is_active
        or not await may_send(
            session,
            requesting_org_id=consult.org_id,
            providing_org_id=specialist.org_id,
            specialty=consult.specialty,
        )
    ):
        raise NotEligible()
    change = transition(
        consult, Event.assign, at=datetime.now(UTC), assignee=(specialist.id, specialist.org_id)
    )
    await transitions.apply(session, change, actor=actor, profile=profile)
    await commit(session)
    return consult


async def complete(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, recommendation: str, disposition: str
) -> Consult:
    """The assigned specialist closes the consult with written guidance and a disposition."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if consult.assigned_to != actor.id:
        raise PermissionDenied("Only the assigned specialist may complete a consult")
    change = transition(consult, Event.complete, at=datetime.now(UTC), outcome=(recommendation, disposition))
    await transitions.apply(session, change, actor=actor)
    await commit(session)
    return consult


async def rate(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, helpful: bool) -> Consult:
    """The requester says whether the consult helped."""
    consult, _ = await access.load(session, actor, consult_id)
    if consult.requester_id != actor.id:
        raise PermissionDenied("Only the requester may rate a consult")
    if consult.status != Status.completed:
        raise InvalidTransition(consult.status, "Only a completed consult can be rated")
    consult.helpful, consult.updated_at = helpful, datetime.now(UTC)
    await record(
        session,
        actor=actor,
        action="consult.rate",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return consult
