"""What a consult's calls do to it, as signaling records them: someone joining puts an accepted
consult in session, and the assignee's first join is the consult's first response."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from consults.models import Consult, Status


async def lock(session: AsyncSession, consult_id: uuid.UUID) -> Consult:
    """The consult, locked until the transaction that records its calls' attendance commits."""
    return (
        await session.execute(select(Consult).where(col(Consult.id) == consult_id).with_for_update())
    ).scalar_one()


def joined(consult: Consult, user_id: uuid.UUID, at: datetime) -> None:
    """`user_id` joined one of the consult's calls at `at`."""
    if consult.status == Status.accepted:
        consult.status, consult.updated_at = Status.in_session, at
    if consult.assigned_to == user_id and consult.first_response_at is None:
        consult.first_response_at = at
