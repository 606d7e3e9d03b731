"""A specialist's concurrency limit, held under the lock of their profile row.

Every path that gives a specialist a consult takes that lock before it touches the consult, so that
the limit is decided under the same lock as the assignment, and in one order (profile, then consult)
so that two such paths never wait on each other in a cycle.
"""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from consults.lifecycle import HELD
from consults.models import Consult
from rosters import profiles
from rosters.models import SpecialistProfile


async def lock_profile(session: AsyncSession, user_id: uuid.UUID) -> SpecialistProfile | None:
    """Queue behind every other assignment to this specialist; None (no limit, nothing to lock) without a profile.

    On PostgreSQL, READ COMMITTED gives each later statement a fresh snapshot, so a load counted once
    the lock is held includes every assignment committed before it; SQLite's BEGIN IMMEDIATE already
    queues every writer."""
    return await profiles.lock(session, user_id)


async def held(session: AsyncSession, user_id: uuid.UUID) -> int:
    """The consults this specialist holds, as this transaction sees them."""
    query = (
        select(func.count())
        .select_from(Consult)
        .where(col(Consult.assigned_to) == user_id, col(Consult.status).in_(HELD))
    )
    return (await session.execute(query)).scalar_one()
