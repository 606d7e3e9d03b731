"""What a consult's calls do to it, as signaling records them: someone joining puts an accepted
consult in session, and the assignee's first join is the consult's first response."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from consults.lifecycle import Event, allows, transition
from consults.models import Consult


async def lock(session: AsyncSession, consult_id: uuid.UUID) -> Consult:
    """The consult, locked until the transaction that records its calls' attendance commits."""
    return (
        await session.execute(select(Consult).where(col(Consult.id) == consult_id).with_for_update())
    ).scalar_one()


def joined(consult: Consult, user_id: uuid.UUID, at: datetime) -> None:
    """`user_id` joined one of the consult's calls at `at`."""
    # Recorded after the fact, so the consult may have closed meanwhile; a join never refuses. It
    # sets nothing off (the call's own events say someone joined), so the change is not applied.
    if allows(consult.status, Event.join_call):
        transition(consult, Event.join_call, at=at)
    if consult.assigned_to == user_id and consult.first_response_at is None:
        consult.first_response_at = at
