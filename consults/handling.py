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
from consults import access, capacity, hooks, notify, reoffer
from consults.escalation import close_pending
from consults.exceptions import InvalidTransition, NotEligible
from consults.lifecycle import ALLOWED_FROM
from consults.models import Consult, Status
from rosters import profiles


async def assign(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, specialist_id: uuid.UUID
) -> Consult:
    """A coordinator of the requesting org assigns (or reassigns) to a specialist it may send to."""
    profile = await capacity.lock_profile(session, specialist_id)  # before the consult, as accept does
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if consult.org_id != actor.org_id:
        raise Hidden()
    if consult.status not in ALLOWED_FROM[Status.accepted]:
        raise InvalidTransition(consult.status)
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
    now = datetime.now(UTC)
    withdrawn = await close_pending(session, consult, now, "withdrawn")
    previous, previous_org = consult.assigned_to, consult.assigned_org_id
    consult.status, consult.assigned_to, consult.assigned_org_id = (
        Status.accepted,
        specialist.id,
        specialist.org_id,
    )
    consult.accepted_at, consult.updated_at = consult.accepted_at or now, now
    if profile is not None:
        profiles.assigned(profile, now)
    await notify.offers_withdrawn(session, consult, withdrawn, "assigned")
    if previous and previous != specialist.id:
        await notify.offers_withdrawn(session, consult, [previous], "reassigned")
        hooks.removed_from_calls(
            session,
            consult_id=consult.id,
            user_id=previous,
            reason="The consult was reassigned to another specialist",
        )
        if previous_org is not None:  # always, for an assigned consult
            await reoffer.specialist_on_call(session, specialist_id=previous, org_id=previous_org, at=now)
    await notify.status_changed(session, consult)
    await record(
        session,
        actor=actor,
        action="consult.assign",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return consult


async def complete(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, recommendation: str, disposition: str
) -> Consult:
    """The assigned specialist closes the consult with written guidance and a disposition."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if consult.assigned_to != actor.id:
        raise PermissionDenied("Only the assigned specialist may complete a consult")
    if consult.status not in ALLOWED_FROM[Status.completed]:
        raise InvalidTransition(consult.status)
    now = datetime.now(UTC)
    consult.status, consult.recommendation, consult.disposition = (
        Status.completed,
        recommendation,
        disposition,
    )
    consult.completed_at, consult.updated_at = now, now
    consult.first_response_at = consult.first_response_at or now
    await reoffer.load_dropped(session, consult, now)
    await notify.status_changed(session, consult)
    hooks.calls_ended(session, consult_id=consult.id, reason="The consult was completed")
    await record(
        session,
        actor=actor,
        action="consult.complete",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
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
