"""A specialist's profile as the consult engine uses it: locked while a consult is given to them
(consults.capacity), and stamped when one is, which puts them at the back of the fairness order
(consults.routing ranks whoever was assigned least recently first)."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from rosters.models import SpecialistProfile


async def lock(session: AsyncSession, user_id: uuid.UUID) -> SpecialistProfile | None:
    """The specialist's profile, locked until the transaction ends; None without one."""
    query = select(SpecialistProfile).where(col(SpecialistProfile.user_id) == user_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def assigned(profile: SpecialistProfile, at: datetime) -> None:
    """The specialist was given a consult at `at`."""
    profile.last_assigned_at = at
