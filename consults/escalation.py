"""One escalation step: expire the level's offers, offer the next batch, or hand over to coordinators."""

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from consults import notify, routing
from consults.models import Consult, EscalationStep, Offer, Status

DEFAULT_WINDOWS = {"emergent": 60, "urgent": 300, "routine": 4 * 3600}
UNASSIGNED_RECHECK = 60


def window(policy: dict | None, urgency: str) -> int:
    """Acknowledgement window in seconds, by urgency, from the requesting org's policy."""
    return int((policy or {}).get(urgency, DEFAULT_WINDOWS[urgency]))


def schedule(session: AsyncSession, consult: Consult, due_at: datetime) -> None:
    """Make a new step current; older pending steps go stale and are skipped when they come due."""
    consult.step_seq += 1
    session.add(EscalationStep(consult_id=consult.id, seq=consult.step_seq, due_at=due_at))


async def advance(session: AsyncSession, consult: Consult, now: datetime, *, fresh: bool = False) -> None:
    """Offer the next batch of eligible specialists, or leave the consult unassigned for the coordinators.

    `fresh`: the consult was just created, so it has no offers to expire or skip."""
    tried: set = set()
    if not fresh:
        expired = await close_pending(session, consult, now, "expired")
        if expired:
            await notify.offers_withdrawn(session, consult, expired, "expired")
        tried = set(
            (
                await session.execute(
                    select(col(Offer.specialist_id)).where(col(Offer.consult_id) == consult.id)
                )
            ).scalars()
        )
    candidates, policy = await routing.eligible(session, consult=consult, now=now)
    start = 1 if consult.status == Status.unassigned else consult.level
    level, batch = routing.next_batch(candidates, consult=consult, tried=tried, from_level=start)
    if batch:
        await _offer(session, consult, level, batch, now, window(policy, consult.urgency))
        return
    first_time = consult.status != Status.unassigned
    consult.status, consult.level, consult.updated_at = Status.unassigned, level, now
    await _recheck(session, consult, now)
    if first_time:
        await notify.status_changed(session, consult, alert=True)


async def _recheck(session: AsyncSession, consult: Consult, now: datetime) -> None:
    """Look again when a shift that could serve it starts, at the latest after UNASSIGNED_RECHECK (the
    safety net: other ways of coming on call are reacted to as they happen, consults.reoffer)."""
    latest = now + timedelta(seconds=UNASSIGNED_RECHECK)
    schedule(
        session,
        consult,
        await routing.next_start(session, consult=consult, after=now, before=latest) or latest,
    )


async def _offer(
    session: AsyncSession,
    consult: Consult,
    level: int,
    batch: list[routing.Candidate],
    now: datetime,
    seconds: int,
) -> None:
    session.add_all(
        [Offer(consult_id=consult.id, specialist_id=c.user_id, org_id=c.org_id, level=level) for c in batch]
    )
    changed = consult.status != Status.offered
    consult.status, consult.level, consult.updated_at = Status.offered, level, now
    consult.first_offered_at = consult.first_offered_at or now
    due = now + timedelta(seconds=seconds)
    schedule(session, consult, due)
    await notify.offers_made(session, consult, [c.user_id for c in batch], due)
    if changed:
        await notify.status_changed(session, consult)


async def close_pending(session: AsyncSession, consult: Consult, now: datetime, status: str) -> list:
    """Mark the consult's pending offers `status`; return whose they were."""
    rows = await session.execute(
        update(Offer)
        .where(col(Offer.consult_id) == consult.id, col(Offer.status) == "pending")
        .values(status=status, responded_at=now)
        .returning(col(Offer.specialist_id))
    )
    return list(rows.scalars())
