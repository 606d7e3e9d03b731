"""Durable escalation steps: each consult has one current step; older ones go stale."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from consults.models import Consult, EscalationStep, Status, StepStatus


def schedule(session: AsyncSession, consult: Consult, due_at: datetime) -> None:
    """Make a new step current; older pending steps go stale and are skipped when they come due."""
    consult.step_seq += 1
    session.add(EscalationStep(consult_id=consult.id, seq=consult.step_seq, due_at=due_at))


def done(step: EscalationStep, *, at: datetime, node: str) -> None:
    """The step ran (or was skipped as stale) on `node` at `at`: it never runs again."""
    step.status, step.done_at, step.done_by = StepStatus.done, at, node


async def deadlines(session: AsyncSession, consults: Sequence[Consult]) -> dict[uuid.UUID, datetime]:
    """When each consult's offers lapse and it escalates, for those still waiting on an accept."""
    consults = [c for c in consults if c.status in (Status.requested, Status.offered)]
    if not consults:
        return {}
    current = tuple_(col(EscalationStep.consult_id), col(EscalationStep.seq))
    query = select(col(EscalationStep.consult_id), col(EscalationStep.due_at)).where(
        current.in_([(c.id, c.step_seq) for c in consults]), col(EscalationStep.status) == StepStatus.pending
    )
    return {row.consult_id: row.due_at for row in await session.execute(query)}
