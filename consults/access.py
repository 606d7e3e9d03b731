"""Who sees how much of a consult: full content, the triage summary, or nothing (404)."""

import uuid
from enum import Enum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.exceptions import Hidden
from auth.principal import Actor
from auth.roles import Perm
from consults.models import Consult, Offer, Participant


class View(Enum):
    full = "full"
    triage = "triage"


async def view_of(session: AsyncSession, actor: Actor, consult: Consult) -> View | None:
    """Requester, the requesting org's coordinators and the assignee see it all; anyone offered it, the summary."""
    if consult.org_id == actor.org_id and (actor.id == consult.requester_id or actor.can(Perm.consults_queue)):
        return View.full
    if actor.id is not None and actor.id == consult.assigned_to:
        return View.full
    if actor.kind == "user" and await _participant(session, consult.id, actor.id):
        return View.full
    if actor.kind == "user":
        offer = (await session.execute(select(Offer.id).where(
            Offer.consult_id == consult.id, Offer.specialist_id == actor.id))).first()
        if offer is not None:
            return View.triage
    return None


async def _participant(session: AsyncSession, consult_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    query = select(Participant.id).where(Participant.consult_id == consult_id, Participant.user_id == user_id)
    return (await session.execute(query)).first() is not None


async def load(session: AsyncSession, actor: Actor, consult_id: uuid.UUID, *, need: View = View.full,
               lock: bool = False) -> tuple[Consult, View]:
    """The consult if the actor may see it at the level needed; otherwise 404, as if it did not exist."""
    query = select(Consult).where(Consult.id == consult_id)
    consult = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    view = await view_of(session, actor, consult) if consult else None
    if view is None or (need is View.full and view is not View.full):
        raise Hidden()
    return consult, view
