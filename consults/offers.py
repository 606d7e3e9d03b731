"""A specialist's offers: list, accept (exactly one wins), decline."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import affected, commit
from api.metrics import OFFERS, TIME_TO_ACCEPT, count_after_commit, observe_after_commit
from api.schemas import PageParams
from audit.service import record, record_list
from auth.principal import Actor
from consults import access, capacity, transitions
from consults.escalation import advance
from consults.exceptions import InvalidTransition, OverCapacity
from consults.lifecycle import HELD, Event
from consults.models import Consult, Offer, OfferStatus, Status


async def pending_offers(
    session: AsyncSession, *, actor: Actor, page: PageParams
) -> list[tuple[Offer, Consult]]:
    """The caller's pending offers, newest first, with each consult's triage summary."""
    rows = (
        await session.execute(
            select(Offer, Consult)
            .join(Consult, col(Consult.id) == col(Offer.consult_id))
            .where(
                col(Offer.specialist_id) == actor.id,
                col(Offer.status) == OfferStatus.pending,
                await access.covered(session, actor),
            )
            .order_by(col(Offer.created_at).desc())
            .limit(page.limit + 1)
            .offset(page.offset)
        )
    ).all()
    await record_list(
        session,
        actor=actor,
        action="offer.list",
        resource_type="offer",
        items=[(c.org_id, c.id) for _, c in rows[: page.limit]],
        item_type="consult",
    )
    await commit(session)
    return [(o, c) for o, c in rows]


async def accept(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID) -> Consult:
    """One conditional UPDATE decides the race, under the lock that holds the specialist's limit; the
    winner asking again (its answer lost on the way) gets the consult as it is."""
    consult, _ = await access.load(session, actor, consult_id, need=access.View.triage)
    profile = await capacity.lock_profile(session, actor.id)
    now = datetime.now(UTC)
    change = await transitions.race(
        session,
        consult,
        Event.accept,
        at=now,
        assignee=(actor.id, actor.org_id),
        guard=exists().where(_mine(actor, consult_id)),  # and my offer still pending
    )
    if change is None:
        return await _replay(session, actor, consult)
    # Counted after taking it, so that a retry of a won accept is never refused by the consult it won.
    if profile is not None and await capacity.held(session, actor.id) > profile.max_concurrent:
        await session.rollback()
        raise OverCapacity()
    # Mine accepted before the move withdraws the others (and tells their holders it was taken).
    await session.execute(
        update(Offer).where(_mine(actor, consult.id)).values(status=OfferStatus.accepted, responded_at=now)
    )
    await transitions.apply(session, change, actor=actor, profile=profile)
    count_after_commit(session, OFFERS, outcome=OfferStatus.accepted.value)
    observe_after_commit(session, TIME_TO_ACCEPT, _since(consult.created_at, now), urgency=consult.urgency)
    await commit(session)
    return consult


def _since(then: datetime, now: datetime) -> float:
    # SQLite hands datetimes back without their zone; they were stored in UTC.
    return (now - (then if then.tzinfo else then.replace(tzinfo=UTC))).total_seconds()


async def decline(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID) -> None:
    """Decline my pending offer; when nobody is left holding one, escalation moves on at once."""
    consult, _ = await access.load(session, actor, consult_id, need=access.View.triage, lock=True)
    now = datetime.now(UTC)
    declined = await session.execute(
        update(Offer)
        .where(
            col(Offer.consult_id) == consult_id,
            col(Offer.specialist_id) == actor.id,
            col(Offer.status) == OfferStatus.pending,
        )
        .values(status=OfferStatus.declined, responded_at=now)
    )
    if affected(declined) != 1:
        raise InvalidTransition(consult.status, "You hold no pending offer for this consult")
    count_after_commit(session, OFFERS, outcome=OfferStatus.declined.value)
    still_out = (
        await session.execute(
            select(col(Offer.id)).where(
                col(Offer.consult_id) == consult_id, col(Offer.status) == OfferStatus.pending
            )
        )
    ).first()
    if still_out is None and consult.status == Status.offered:
        await advance(session, consult, now)
    await record(
        session,
        actor=actor,
        action="consult.decline",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)


async def _replay(session: AsyncSession, actor: Actor, consult: Consult) -> Consult:
    """Lost the UPDATE: 200 with the consult if it is already mine (a retry), else 409 with its status."""
    await session.rollback()
    await session.refresh(consult)
    if consult.assigned_to != actor.id or consult.status not in HELD:
        raise InvalidTransition(consult.status, "Someone else accepted, or the offer lapsed")
    # A read of consult data, audited as one; the accept itself was recorded, and announced, once.
    await record(
        session,
        actor=actor,
        action="consult.read",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
        reason="accept_replayed",
    )
    await commit(session)
    return consult


def _mine(actor: Actor, consult_id: uuid.UUID):
    return and_(
        col(Offer.consult_id) == consult_id,
        col(Offer.specialist_id) == actor.id,
        col(Offer.status) == OfferStatus.pending,
    )
