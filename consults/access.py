"""Who sees how much of a consult: full content, the triage summary, or nothing (404)."""

import uuid
from enum import Enum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.service import may_send
from auth.exceptions import Hidden
from auth.principal import Actor
from auth.roles import Perm
from consults.models import Consult, Offer, Participant


class View(Enum):
    full = "full"
    triage = "triage"


async def view_of(session: AsyncSession, actor: Actor, consult: Consult) -> View | None:
    """Requester, the requesting org's coordinators, the assignee and participants see it all; anyone
    offered it, the summary. Across orgs, only while an agreement still covers it."""
    if consult.org_id == actor.org_id and (
        actor.id == consult.requester_id or actor.can(Perm.consults_queue)
    ):
        return View.full
    view = await _involvement(session, actor, consult)
    if (
        view is not None
        and actor.org_id != consult.org_id
        and not await may_send(
            session,
            requesting_org_id=consult.org_id,
            providing_org_id=actor.org_id,
            specialty=consult.specialty,
        )
    ):
        return None  # a suspended or revoked agreement opens nothing, not even what it opened before
    return view


async def _involvement(session: AsyncSession, actor: Actor, consult: Consult) -> View | None:
    if actor.kind != "user":
        return None
    if actor.id == consult.assigned_to or await is_invited(session, consult.id, actor.id):
        return View.full
    offer = (
        await session.execute(
            select(col(Offer.id)).where(
                col(Offer.consult_id) == consult.id, col(Offer.specialist_id) == actor.id
            )
        )
    ).first()
    return View.triage if offer is not None else None


async def is_invited(session: AsyncSession, consult_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Was this user invited into the consult's calls (an interpreter, a second specialist)?"""
    query = select(col(Participant.id)).where(
        col(Participant.consult_id) == consult_id, col(Participant.user_id) == user_id
    )
    return (await session.execute(query)).first() is not None


async def load(
    session: AsyncSession, actor: Actor, consult_id: uuid.UUID, *, need: View = View.full, lock: bool = False
) -> tuple[Consult, View]:
    """The consult if the actor may see it at the level needed; otherwise 404, as if it did not exist."""
    query = select(Consult).where(col(Consult.id) == consult_id)
    consult = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    view = await view_of(session, actor, consult) if consult else None
    if consult is None or view is None or (need is View.full and view is not View.full):
        raise Hidden()
    return consult, view
