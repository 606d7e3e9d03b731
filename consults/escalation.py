"""One escalation step: expire the level's offers, offer the next batch, or hand over to coordinators."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.metrics import OFFERS, count_after_commit
from consults import notify, routing, transitions
from consults.lifecycle import Event, transition
from consults.models import Consult, Offer, OfferStatus, Status
from consults.steps import schedule

DEFAULT_WINDOWS = {"emergent": 60, "urgent": 300, "routine": 4 * 3600}
UNASSIGNED_RECHECK = 60


def window(policy: dict | None, urgency: str) -> int:
    """Acknowledgement window in seconds, by urgency, from the requesting org's policy."""
    return int((policy or {}).get(urgency, DEFAULT_WINDOWS[urgency]))


async def advance(session: AsyncSession, consult: Consult, now: datetime, *, fresh: bool = False) -> None:
    """Offer the next batch of eligible specialists, or leave the consult unassigned for the coordinators.

    `fresh`: the consult was just created, so it has no offers to expire or skip."""
    tried: set = set()
    if not fresh:
        expired = await transitions.close_pending(session, consult, now, OfferStatus.expired)
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
    change = transition(consult, Event.exhaust, at=now, level=level)
    await _recheck(session, consult, now)
    await transitions.apply(session, change)  # the coordinators are alerted the first time only


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
    count_after_commit(session, OFFERS, len(batch), outcome="made")
    change = transition(consult, Event.offer, at=now, level=level)
    due = now + timedelta(seconds=seconds)
    schedule(session, consult, due)
    await notify.offers_made(session, consult, [c.user_id for c in batch], due)
    await transitions.apply(session, change)
