"""Runs due escalation steps: claimed with row locks so that, across nodes, each runs once."""

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import commit
from api.errors import log_failure
from api.metrics import ESCALATION_STEPS, count_after_commit
from api.tasks import cancel, whole
from consults.escalation import advance
from consults.lifecycle import ROUTING
from consults.models import Consult, EscalationStep, StepStatus
from consults.steps import done

log = logging.getLogger("liaison.escalation")


async def run_due_step(session: AsyncSession, *, node: str, now: datetime | None = None) -> bool:
    """Claim one due step (SKIP LOCKED: other nodes take others), run it if still current; False if none."""
    now = now or datetime.now(UTC)
    step = (
        await session.execute(
            select(EscalationStep)
            .where(col(EscalationStep.status) == StepStatus.pending, col(EscalationStep.due_at) <= now)
            .order_by(col(EscalationStep.due_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
    if step is None:
        return False
    consult = (
        await session.execute(select(Consult).where(col(Consult.id) == step.consult_id).with_for_update())
    ).scalar_one()
    current = step.seq == consult.step_seq and consult.status in ROUTING
    if current:
        await advance(session, consult, now)
    done(step, at=now, node=node)
    count_after_commit(session, ESCALATION_STEPS, result="advanced" if current else "stale")
    await commit(session)
    return True


class EscalationWorker:
    """A background task per process; steps are rows, so a restart loses and doubles nothing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, poll_seconds: float) -> None:
        self._sessions = sessions
        self._poll = poll_seconds
        self.node = uuid.uuid4().hex[:12]
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="escalation-worker")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _loop(self) -> None:
        while True:
            try:
                while await whole(self._one()):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "escalation step failed; it stays pending and is retried", exc)
            await asyncio.sleep(self._poll)

    async def _one(self) -> bool:
        async with self._sessions() as session:
            return await run_due_step(session, node=self.node)
