"""When an agreement stops counting, its pending cross-org offers are withdrawn and its calls end, at once."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.metrics import OFFERS, count_after_commit
from consults import hooks, notify
from consults.lifecycle import HELD
from consults.models import Consult, Offer, OfferStatus, Status
from consults.steps import schedule


async def withdraw_offers(
    session: AsyncSession, *, requesting_org_id: uuid.UUID, providing_org_id: uuid.UUID
) -> None:
    """Withdraw the providing org's pending offers on the requesting org's consults; escalate those left bare."""
    now = datetime.now(UTC)
    mine = select(col(Consult.id)).where(col(Consult.org_id) == requesting_org_id).scalar_subquery()
    rows = (
        await session.execute(
            update(Offer)
            .where(
                col(Offer.status) == OfferStatus.pending,
                col(Offer.org_id) == providing_org_id,
                col(Offer.consult_id).in_(mine),
            )
            .values(status=OfferStatus.withdrawn, responded_at=now)
            .returning(col(Offer.consult_id), col(Offer.specialist_id))
            .execution_options(synchronize_session=False)
        )
    ).all()
    if rows:
        count_after_commit(session, OFFERS, len(rows), outcome=OfferStatus.withdrawn.value)
    for consult_id in {cid for cid, _ in rows}:
        consult = (
            await session.execute(select(Consult).where(col(Consult.id) == consult_id).with_for_update())
        ).scalar_one()
        await notify.offers_withdrawn(
            session, consult, [sid for cid, sid in rows if cid == consult_id], "agreement_closed"
        )
        left = (
            await session.execute(
                select(col(Offer.id)).where(
                    col(Offer.consult_id) == consult_id, col(Offer.status) == OfferStatus.pending
                )
            )
        ).first()
        if left is None and consult.status == Status.offered:
            schedule(session, consult, now)  # the worker moves it to the next level right away
    calls = select(col(Consult.id)).where(
        col(Consult.org_id) == requesting_org_id,
        col(Consult.assigned_org_id) == providing_org_id,
        col(Consult.status).in_(HELD),
    )
    for consult_id in (await session.execute(calls)).scalars():
        hooks.calls_ended(session, consult_id=consult_id, reason="The agreement this call depended on ended")
