"""Waiting consults are routed again as soon as someone who could take them comes on call.

Reactions rather than faster polling: rosters tells us (rosters.hooks) when a specialist becomes
available, gets a shift covering now or starting later, or may hold more consults; completing or
losing a consult frees a place too. Each unassigned consult the specialist could serve gets an
escalation step due then: a row like every other step, so it survives a restart and runs once
across nodes, and its routing decides who is eligible when it runs. The unassigned recheck stays
as the safety net for what no reaction sees (two such changes committing at the same instant).
"""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.service import may_send
from consults.models import Consult, EscalationStep, Status, StepStatus
from consults.steps import schedule
from rosters.models import Roster, Shift


async def specialist_on_call(
    session: AsyncSession, *, specialist_id: uuid.UUID, org_id: uuid.UUID, at: datetime
) -> None:
    """Have every unassigned consult this specialist could serve at `at` routed again then."""
    for consult in await _waiting_for(session, specialist_id, org_id, at):
        if not await _due_by(session, consult, at):
            schedule(session, consult, at)


async def _waiting_for(
    session: AsyncSession, specialist_id: uuid.UUID, org_id: uuid.UUID, at: datetime
) -> list[Consult]:
    """Unassigned consults in a specialty of the specialist's shifts at `at`, from orgs that may send to
    them; locked in id order, so that two reactions queue instead of deadlocking."""
    specialties = (
        select(col(Roster.specialty))
        .join(Shift, col(Shift.roster_id) == col(Roster.id))
        .where(col(Shift.specialist_id) == specialist_id, col(Shift.starts_at) <= at, col(Shift.ends_at) > at)
    )
    rows = (
        await session.execute(
            select(col(Consult.id), col(Consult.org_id), col(Consult.specialty)).where(
                col(Consult.status) == Status.unassigned,
                col(Consult.specialty).in_(specialties),
                col(Consult.requester_id) != specialist_id,
            )
        )
    ).all()
    sendable = {
        pair
        for pair in {(org, specialty) for _, org, specialty in rows}
        if await may_send(
            session, requesting_org_id=pair[0], providing_org_id=org_id, specialty=pair[1], at=at
        )
    }
    ids = [cid for cid, org, specialty in rows if (org, specialty) in sendable]
    locked = (
        select(Consult)
        .where(col(Consult.id).in_(ids), col(Consult.status) == Status.unassigned)
        .order_by(col(Consult.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(locked)).scalars()) if ids else []


async def _due_by(session: AsyncSession, consult: Consult, at: datetime) -> bool:
    """Is the consult's current step due by then anyway? Read once its row is locked, so that a step
    running on another node meanwhile has left its successor to be seen."""
    query = select(col(EscalationStep.id)).where(
        col(EscalationStep.consult_id) == consult.id,
        col(EscalationStep.seq) == consult.step_seq,
        col(EscalationStep.status) == StepStatus.pending,
        col(EscalationStep.due_at) <= at,
    )
    return (await session.execute(query)).first() is not None
