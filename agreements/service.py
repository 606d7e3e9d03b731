"""Propose, accept, suspend, resume and revoke agreements; and the boundary question itself."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import Row, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.exceptions import InvalidTransition, NotAParty, NotYourSide
from agreements.hooks import boundary_closed
from agreements.models import Agreement
from agreements.models import AgreementStatus as S
from agreements.schemas import AgreementIn
from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.exceptions import Hidden
from auth.principal import Actor
from orgs.models import Organization


async def propose(session: AsyncSession, *, actor: Actor, data: AgreementIn) -> Agreement:
    """One party's admin proposes; the other party's admin must accept."""
    if actor.org_id not in (data.requesting_org_id, data.providing_org_id):
        raise NotAParty()
    other = data.providing_org_id if actor.org_id == data.requesting_org_id else data.requesting_org_id
    if await session.get(Organization, other) is None:
        raise Hidden("No such organization")
    agreement = Agreement(**data.model_dump(), proposed_by_org_id=actor.org_id, created_by=actor.id)
    agreement.specialties = sorted(set(agreement.specialties))
    session.add(agreement)
    await _audit(session, actor, "agreement.propose", agreement)
    await commit(session)
    return agreement


async def list_agreements(
    session: AsyncSession, *, actor: Actor, status: str | None, page: PageParams
) -> list[Agreement]:
    """Agreements the caller's org is a party to."""
    query = select(Agreement).where(_party(actor.org_id)).order_by(col(Agreement.created_at).desc())
    if status:
        query = query.where(col(Agreement.status) == status)
    rows = (await session.execute(query.limit(page.limit + 1).offset(page.offset))).scalars().all()
    await record(
        session, actor=actor, action="agreement.list", org_id=actor.org_id, resource_type="agreement"
    )
    await commit(session)
    return list(rows)


async def get_agreement(session: AsyncSession, *, actor: Actor, agreement_id: uuid.UUID) -> Agreement:
    """One agreement, if the caller's org is a party to it."""
    agreement = await _visible(session, actor, agreement_id)
    await _audit(session, actor, "agreement.read", agreement)
    await commit(session)
    return agreement


async def transition(
    session: AsyncSession, *, actor: Actor, agreement_id: uuid.UUID, action: str
) -> Agreement:
    """accept, suspend, resume or revoke, each by the party allowed to."""
    agreement = await _visible(session, actor, agreement_id, lock=True)
    if agreement.status not in _FROM[action]:
        raise InvalidTransition(agreement.status, action)
    if action == "accept" and actor.org_id == agreement.proposed_by_org_id:
        raise NotYourSide("The organization that proposed an agreement cannot accept it")
    if action == "resume" and actor.org_id != agreement.suspended_by_org_id:
        raise NotYourSide("Only the organization that suspended an agreement can resume it")
    agreement.status = _TO[action]
    agreement.suspended_by_org_id = actor.org_id if action == "suspend" else None
    agreement.updated_at = datetime.now(UTC)
    if agreement.status in (S.suspended, S.revoked):
        await boundary_closed(
            session,
            requesting_org_id=agreement.requesting_org_id,
            providing_org_id=agreement.providing_org_id,
        )
    await _audit(session, actor, f"agreement.{action}", agreement)
    await commit(session)
    return agreement


_FROM = {
    "accept": {S.proposed},
    "suspend": {S.active},
    "resume": {S.suspended},
    "revoke": {S.proposed, S.active, S.suspended},
}
_TO = {"accept": S.active, "suspend": S.suspended, "resume": S.active, "revoke": S.revoked}


async def partner_orgs(
    session: AsyncSession, *, requesting_org_id: uuid.UUID, specialty: str, at: datetime | None = None
) -> list[uuid.UUID]:
    """Orgs that may receive this org's consults in this specialty now: active, in date, covering it."""
    return sorted(
        {a.providing_org_id for a in await _in_force(session, requesting_org_id, specialty, at)}, key=str
    )


async def covered_until(
    session: AsyncSession, *, requesting_org_id: uuid.UUID, providing_org_id: uuid.UUID, specialty: str
) -> datetime | None:
    """Until when the agreements in force now let org A send consults in specialty S to org B (None: they don't)."""
    return max(
        (
            a.valid_until
            for a in await _in_force(session, requesting_org_id, specialty, None)
            if a.providing_org_id == providing_org_id
        ),
        default=None,
    )


# Read for every consult routed and every cross-org event sent: built once, rows not ORM objects.
_IN_FORCE = select(
    col(Agreement.providing_org_id), col(Agreement.specialties), col(Agreement.valid_until)
).where(
    col(Agreement.requesting_org_id) == bindparam("org"),
    col(Agreement.status) == S.active,
    col(Agreement.valid_from) <= bindparam("at"),
    col(Agreement.valid_until) > bindparam("at"),
)


async def _in_force(
    session: AsyncSession, requesting_org_id: uuid.UUID, specialty: str, at: datetime | None
) -> list[Row]:
    """The requesting org's agreements that are active, in date at T (default now) and cover the specialty."""
    params = {"org": requesting_org_id, "at": at or datetime.now(UTC)}
    rows = (await session.execute(_IN_FORCE, params)).all()
    return [a for a in rows if specialty in a.specialties]


async def served(
    session: AsyncSession, *, providing_org_id: uuid.UUID, at: datetime | None = None
) -> dict[uuid.UUID, frozenset[str]]:
    """Which orgs may send this org consults now, and in which specialties (active, in date)."""
    at = at or datetime.now(UTC)
    rows = (
        await session.execute(
            select(col(Agreement.requesting_org_id), col(Agreement.specialties)).where(
                col(Agreement.providing_org_id) == providing_org_id,
                col(Agreement.status) == S.active,
                col(Agreement.valid_from) <= at,
                col(Agreement.valid_until) > at,
            )
        )
    ).all()
    out: dict[uuid.UUID, set[str]] = {}
    for requesting, specialties in rows:
        out.setdefault(requesting, set()).update(specialties)
    return {org: frozenset(specs) for org, specs in out.items()}


async def may_send(
    session: AsyncSession,
    *,
    requesting_org_id: uuid.UUID,
    providing_org_id: uuid.UUID,
    specialty: str,
    at: datetime | None = None,
) -> bool:
    """May org A send a consult in specialty S to org B's specialists at time T (default now)?"""
    if requesting_org_id == providing_org_id:
        return True
    return providing_org_id in await partner_orgs(
        session, requesting_org_id=requesting_org_id, specialty=specialty, at=at
    )


def _party(org_id: uuid.UUID | None):
    return or_(col(Agreement.requesting_org_id) == org_id, col(Agreement.providing_org_id) == org_id)


async def _visible(
    session: AsyncSession, actor: Actor, agreement_id: uuid.UUID, lock: bool = False
) -> Agreement:
    query = select(Agreement).where(col(Agreement.id) == agreement_id)
    agreement = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if agreement is None or actor.org_id not in (agreement.requesting_org_id, agreement.providing_org_id):
        raise Hidden()
    return agreement


async def _audit(session: AsyncSession, actor: Actor, action: str, agreement: Agreement) -> None:
    # Recorded under both parties' orgs: the other side's admin sees what was done to their agreement.
    for org in (agreement.requesting_org_id, agreement.providing_org_id):
        await record(
            session,
            actor=actor,
            action=action,
            org_id=org,
            resource_type="agreement",
            resource_id=agreement.id,
        )
