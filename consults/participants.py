"""Inviting people into a consult's calls: a user of the requesting org or of the assignee's org."""

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import commit
from api.errors import Conflict
from audit.service import record
from auth.exceptions import PermissionDenied
from auth.models import User
from auth.principal import Actor
from auth.roles import Perm
from consults import access
from consults.exceptions import InvalidTransition, NotEligible
from consults.lifecycle import CLOSED
from consults.models import Participant


async def invite(
    session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> Participant:
    """The requester, the assignee or a coordinator of the requesting org invites someone."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    coordinator = actor.can(Perm.consults_queue) and actor.org_id == consult.org_id
    if actor.id not in (consult.requester_id, consult.assigned_to) and not coordinator:
        raise PermissionDenied("Only the requester, the assignee or a coordinator may invite")
    if consult.status in CLOSED:
        raise InvalidTransition(consult.status)
    user = await session.get(User, user_id)
    if user is None or not user.is_active or user.org_id not in (consult.org_id, consult.assigned_org_id):
        raise NotEligible("Invite a user of the requesting org or of the assigned specialist's org")
    participant = Participant(consult_id=consult.id, user_id=user.id, role=role, invited_by=actor.id)
    session.add(participant)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("That user is already a participant") from None
    await record(
        session,
        actor=actor,
        action="consult.invite",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
    )
    await commit(session)
    return participant
