"""Who may be offered a consult now, in which escalation level, in which order.

Levels: 1 = the requesting org's tier-1 shifts, 2 = its other tiers, 3 = partner orgs under an
active agreement covering the specialty. Past level 3 the consult goes to the coordinators' queue.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.service import partner_orgs
from auth.models import User
from consults.lifecycle import HELD
from consults.models import Consult
from orgs.models import Organization
from rosters.models import Availability, Roster, Shift, SpecialistProfile

LAST_LEVEL = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    user_id: uuid.UUID
    org_id: uuid.UUID
    tier: int
    languages: tuple[str, ...]
    load: int
    last_assigned_at: datetime | None


def level_of(candidate: Candidate, requesting_org: uuid.UUID) -> int:
    if candidate.org_id != requesting_org:
        return 3
    return 1 if candidate.tier == 1 else 2


def rank(candidates: list[Candidate], languages: list[str]) -> list[Candidate]:
    """A shared language first, then the lighter load, then whoever was assigned least recently."""
    wanted = set(languages)
    return sorted(
        candidates,
        key=lambda c: (
            0 if not wanted or wanted & set(c.languages) else 1,
            c.load,
            c.last_assigned_at or EPOCH,
            c.tier,
            str(c.user_id),
        ),
    )


def next_batch(
    candidates: list[Candidate], *, consult: Consult, tried: set[uuid.UUID], from_level: int
) -> tuple[int, list[Candidate]]:
    """The first level at or after `from_level` with someone not yet tried; emergent rings them all."""
    for level in range(max(from_level, 1), LAST_LEVEL + 1):
        fresh = [c for c in candidates if level_of(c, consult.org_id) == level and c.user_id not in tried]
        if fresh:
            ranked = rank(fresh, consult.languages)
            return level, ranked if consult.urgency == "emergent" else ranked[:1]
    return LAST_LEVEL + 1, []


def _eligible_query() -> Select:
    """Built once: constructing this statement and its cache key cost more than running it."""
    load = (
        select(col(Consult.assigned_to), func.count().label("n"))
        .where(col(Consult.status).in_(sorted(HELD)))
        .group_by(col(Consult.assigned_to))
        .subquery()
    )
    on_shift = (
        select(
            col(Shift.specialist_id).label("uid"),
            col(Shift.org_id).label("org"),
            func.min(col(Shift.tier)).label("tier"),
        )
        .join(Roster, col(Roster.id) == col(Shift.roster_id))
        .where(
            col(Roster.specialty) == bindparam("specialty"),
            col(Shift.org_id).in_(bindparam("orgs", expanding=True)),
            col(Shift.starts_at) <= bindparam("now"),
            col(Shift.ends_at) > bindparam("now"),
            col(Shift.specialist_id) != bindparam("requester"),
        )
        .group_by(col(Shift.specialist_id), col(Shift.org_id))
        .subquery()
    )
    policy = (
        select(col(Organization.escalation_windows))
        .where(col(Organization.id) == bindparam("org_id"))
        .scalar_subquery()
    )
    return (
        select(
            on_shift.c.uid,
            on_shift.c.org,
            on_shift.c.tier,
            col(SpecialistProfile.languages),
            func.coalesce(load.c.n, 0),
            col(SpecialistProfile.max_concurrent),
            col(SpecialistProfile.last_assigned_at),
            policy,
        )
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == on_shift.c.uid)
        .join(User, col(User.id) == on_shift.c.uid)
        .outerjoin(load, load.c.assigned_to == on_shift.c.uid)
        .where(col(SpecialistProfile.availability) == Availability.available, col(User.is_active).is_(True))
    )


_ELIGIBLE = _eligible_query()


async def eligible(
    session: AsyncSession, *, consult: Consult, now: datetime
) -> tuple[list[Candidate], dict | None]:
    """On a shift now for the specialty, in the org or a partner, available, active, under their limit;
    with the requesting org's escalation policy, read in the same round trip."""
    params = {
        "specialty": consult.specialty,
        "orgs": await _reach(session, consult, now),
        "now": now,
        "requester": consult.requester_id,
        "org_id": consult.org_id,
    }
    rows = (await session.execute(_ELIGIBLE, params)).all()
    candidates = [
        Candidate(uid, org, tier, tuple(langs or ()), n, last)
        for uid, org, tier, langs, n, cap, last, _ in rows
        if n < cap
    ]
    return candidates, (rows[0][-1] if rows else None)


async def next_start(
    session: AsyncSession, *, consult: Consult, after: datetime, before: datetime
) -> datetime | None:
    """The first shift start in (after, before) that could bring someone on call for this consult."""
    query = (
        select(func.min(Shift.starts_at))
        .join(Roster, col(Roster.id) == col(Shift.roster_id))
        .where(
            col(Roster.specialty) == consult.specialty,
            col(Shift.org_id).in_(await _reach(session, consult, after)),
            col(Shift.starts_at) > after,
            col(Shift.starts_at) < before,
            col(Shift.specialist_id) != consult.requester_id,
        )
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _reach(session: AsyncSession, consult: Consult, at: datetime) -> list[uuid.UUID]:
    """The requesting org and the orgs that may take its consults in this specialty at `at`."""
    return [
        consult.org_id,
        *await partner_orgs(session, requesting_org_id=consult.org_id, specialty=consult.specialty, at=at),
    ]
