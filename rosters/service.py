"""Profiles, availability, rosters, shifts and who is on call."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.exceptions import Hidden
from auth.models import User
from auth.principal import Actor
from auth.roles import Perm
from rosters.exceptions import NoProfile, NotASpecialist
from rosters.hooks import came_on_call
from rosters.models import Availability, Roster, Shift, SpecialistProfile
from rosters.schemas import OnCallOut, ProfileIn, ShiftIn


async def put_profile(
    session: AsyncSession, *, actor: Actor, user_id: uuid.UUID, data: ProfileIn
) -> SpecialistProfile:
    """Set a specialist's profile: the specialist themself, or their org's roster managers."""
    if actor.id != user_id and not actor.can(Perm.rosters_manage):
        raise Hidden()
    await _specialist_of(session, actor.org_id, user_id)
    prior = await session.get(SpecialistProfile, user_id)
    profile = prior or SpecialistProfile(user_id=user_id, org_id=actor.org_id)
    more = prior is None or data.max_concurrent > prior.max_concurrent  # read before it changes below
    profile.specialties, profile.languages = sorted(set(data.specialties)), sorted(set(data.languages))
    profile.max_concurrent, profile.updated_at = data.max_concurrent, datetime.now(UTC)
    session.add(profile)
    if more:  # routing counts only specialists with a profile, each under their limit
        await came_on_call(session, specialist_id=user_id, org_id=actor.org_id, at=profile.updated_at)
    await record(
        session,
        actor=actor,
        action="profile.update",
        org_id=actor.org_id,
        resource_type="user",
        resource_id=user_id,
    )
    await commit(session)
    return profile


async def set_availability(
    session: AsyncSession, *, actor: Actor, availability: Availability
) -> SpecialistProfile:
    """A specialist says whether they can take consults now."""
    profile = await session.get(SpecialistProfile, actor.id)
    if profile is None:
        raise NoProfile()
    profile.availability, profile.updated_at = availability, datetime.now(UTC)
    if availability == Availability.available:
        await came_on_call(session, specialist_id=actor.id, org_id=profile.org_id, at=profile.updated_at)
    await record(
        session,
        actor=actor,
        action="availability.update",
        org_id=actor.org_id,
        resource_type="user",
        resource_id=actor.id,
        reason=availability,
    )
    await commit(session)
    return profile


async def create_roster(session: AsyncSession, *, actor: Actor, specialty: str, name: str) -> Roster:
    """A roster of the caller's org for one specialty."""
    roster = Roster(org_id=actor.org_id, specialty=specialty, name=name)
    session.add(roster)
    await record(
        session,
        actor=actor,
        action="roster.create",
        org_id=actor.org_id,
        resource_type="roster",
        resource_id=roster.id,
    )
    await commit(session)
    return roster


async def list_rosters(
    session: AsyncSession, *, actor: Actor, specialty: str | None, page: PageParams
) -> list[Roster]:
    """The caller's org's rosters."""
    query = select(Roster).where(col(Roster.org_id) == actor.org_id).order_by(Roster.specialty, Roster.name)
    if specialty:
        query = query.where(col(Roster.specialty) == specialty)
    rows = (await session.execute(query.limit(page.limit + 1).offset(page.offset))).scalars().all()
    await record(session, actor=actor, action="roster.list", org_id=actor.org_id, resource_type="roster")
    await commit(session)
    return list(rows)


async def add_shift(session: AsyncSession, *, actor: Actor, roster_id: uuid.UUID, data: ShiftIn) -> Shift:
    """Put one of the org's specialists on a roster for a while, at a tier."""
    roster = await _roster(session, actor, roster_id)
    await _specialist_of(session, roster.org_id, data.specialist_id)
    shift = Shift(roster_id=roster.id, org_id=roster.org_id, **data.model_dump())
    session.add(shift)
    now = datetime.now(UTC)
    if shift.ends_at > now:  # covering now, or from its start
        await came_on_call(
            session, specialist_id=shift.specialist_id, org_id=roster.org_id, at=max(shift.starts_at, now)
        )
    await record(
        session,
        actor=actor,
        action="shift.create",
        org_id=roster.org_id,
        resource_type="roster",
        resource_id=roster.id,
    )
    await commit(session)
    return shift


async def on_call(
    session: AsyncSession, *, actor: Actor, roster_id: uuid.UUID, at: datetime | None
) -> list[OnCallOut]:
    """Shifts of the roster covering instant `at` (now by default), lowest tier first."""
    roster = await _roster(session, actor, roster_id)
    at = at or datetime.now(UTC)
    # The profile is None where the outer join found none.
    rows: Sequence[tuple[Shift, SpecialistProfile | None]] = (
        await session.execute(
            select(Shift, SpecialistProfile)
            .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(Shift.specialist_id), isouter=True)
            .where(col(Shift.roster_id) == roster.id, col(Shift.starts_at) <= at, col(Shift.ends_at) > at)
            .order_by(col(Shift.tier), col(Shift.starts_at))
        )
    ).all()
    await record(
        session,
        actor=actor,
        action="roster.on_call",
        org_id=roster.org_id,
        resource_type="roster",
        resource_id=roster.id,
    )
    await commit(session)
    return [
        OnCallOut(
            shift_id=s.id,
            specialist_id=s.specialist_id,
            tier=s.tier,
            ends_at=s.ends_at,
            availability=p.availability if p else None,
            languages=p.languages if p else [],
        )
        for s, p in rows
    ]


async def _roster(session: AsyncSession, actor: Actor, roster_id: uuid.UUID) -> Roster:
    roster = await session.get(Roster, roster_id)
    if roster is None or roster.org_id != actor.org_id:
        raise Hidden()
    return roster


async def _specialist_of(session: AsyncSession, org_id: uuid.UUID | None, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or user.org_id != org_id:
        raise Hidden()
    if "specialist" not in user.roles:
        raise NotASpecialist()
    return user


async def on_call_anywhere(
    session: AsyncSession, *, actor: Actor, specialty: str | None, at: datetime, page: PageParams
) -> list[tuple[Shift, str, SpecialistProfile | None]]:
    """Every shift of the actor's org covering `at`, across its rosters: (shift, specialty, profile)."""
    query = (
        select(Shift, col(Roster.specialty), SpecialistProfile)
        .join(Roster, col(Roster.id) == col(Shift.roster_id))
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(Shift.specialist_id), isouter=True)
        .where(col(Shift.org_id) == actor.org_id, col(Shift.starts_at) <= at, col(Shift.ends_at) > at)
        .order_by(col(Roster.specialty), col(Shift.tier), col(Shift.id))
    )
    if specialty:
        query = query.where(col(Roster.specialty) == specialty)
    rows = (await session.execute(query.limit(page.limit + 1).offset(page.offset))).all()
    await record(session, actor=actor, action="roster.on_call", org_id=actor.org_id, resource_type="roster")
    await commit(session)
    return [(s, spec, p) for s, spec, p in rows]
