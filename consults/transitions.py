"""What a consult's move sets off, staged in the caller's transaction: its pending offers withdrawn,
the specialist it freed looked at again, the news, its calls ended, the audit record."""

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.metrics import OFFERS, count_after_commit
from audit.service import record
from auth.principal import Actor
from consults import hooks, notify, reoffer
from consults.lifecycle import HELD, RULES, Announce, Change, Event, guarded
from consults.models import Consult, Offer, OfferStatus
from rosters import profiles
from rosters.models import SpecialistProfile


async def apply(
    session: AsyncSession,
    change: Change,
    *,
    actor: Actor | None = None,
    profile: SpecialistProfile | None = None,
) -> None:
    """Stage everything `change` sets off; `profile`, the new assignee's (locked), takes its turn."""
    consult, rule = change.consult, change.rule
    if profile is not None:
        profiles.assigned(profile, change.at)
    if rule.withdraw:
        withdrawn = await close_pending(session, consult, change.at, OfferStatus.withdrawn)
        await notify.offers_withdrawn(session, consult, withdrawn, rule.withdraw)
    if change.released:
        await _release(session, change, *change.released)
    if rule.announce is Announce.always or (rule.announce is Announce.on_move and change.moved):
        await notify.status_changed(session, consult, alert=rule.alert)
    if rule.end_calls:
        hooks.calls_ended(session, consult_id=consult.id, reason=rule.end_calls)
    if rule.audit and actor is not None:
        await record(
            session,
            actor=actor,
            action=rule.audit,
            org_id=consult.org_id,
            resource_type="consult",
            resource_id=consult.id,
        )


async def race(
    session: AsyncSession,
    consult: Consult,
    event: Event,
    *,
    at: datetime,
    assignee: tuple[uuid.UUID, uuid.UUID],
    guard: ColumnElement[bool],
) -> Change | None:
    """Make the move with one conditional UPDATE (lifecycle.guarded); None if another got there first.
    A raced move has a single source status, so that winning it tells where the consult came from."""
    (source,) = RULES[event].sources
    won = await session.execute(guarded(consult.id, event, at=at, assignee=assignee, guard=guard))
    if cast(CursorResult[Any], won).rowcount != 1:
        return None
    await session.refresh(consult)
    return Change(consult, event, source, at)


async def close_pending(
    session: AsyncSession, consult: Consult, now: datetime, status: OfferStatus
) -> list[uuid.UUID]:
    """Mark the consult's pending offers `status`; return whose they were."""
    rows = await session.execute(
        update(Offer)
        .where(col(Offer.consult_id) == consult.id, col(Offer.status) == OfferStatus.pending)
        .values(status=status, responded_at=now)
        .returning(col(Offer.specialist_id))
    )
    closed = list(rows.scalars())
    if closed:
        count_after_commit(session, OFFERS, len(closed), outcome=status.value)
    return closed


async def _release(session: AsyncSession, change: Change, user_id: uuid.UUID, org_id: uuid.UUID) -> None:
    """The specialist who held the consult holds one fewer: a waiting consult may be theirs now. Replaced
    by another (a reassignment), they are told and leave its calls; otherwise its calls end anyway."""
    consult = change.consult
    if change.rule.target in HELD:
        await notify.offers_withdrawn(session, consult, [user_id], "reassigned")
        hooks.removed_from_calls(
            session,
            consult_id=consult.id,
            user_id=user_id,
            reason="The consult was reassigned to another specialist",
        )
    await reoffer.specialist_on_call(session, specialist_id=user_id, org_id=org_id, at=change.at)
