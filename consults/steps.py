"""Durable escalation steps: each consult has one current step; older ones go stale."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from consults.models import Consult, EscalationStep, StepStatus


def schedule(session: AsyncSession, consult: Consult, due_at: datetime) -> None:
    """Make a new step current; older pending steps go stale and are skipped when they come due."""
    consult.step_seq += 1
    session.add(EscalationStep(consult_id=consult.id, seq=consult.step_seq, due_at=due_at))


def done(step: EscalationStep, *, at: datetime, node: str) -> None:
    """The step ran (or was skipped as stale) on `node` at `at`: it never runs again."""
    step.status, step.done_at, step.done_by = StepStatus.done, at, node
