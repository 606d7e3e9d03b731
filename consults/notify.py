"""Who hears about what: offers to specialists, status to requester and assignee, queue to coordinators."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Actor
from auth.roles import Perm
from consults.models import Consult
from consults.schemas import TriageOut
from events.models import channel_of_role, own_channels
from events.service import emit


async def offers_made(
    session: AsyncSession, consult: Consult, specialist_ids: list[uuid.UUID], expires_at
) -> None:
    triage = TriageOut.model_validate(consult).model_dump(mode="json")
    await emit(
        session,
        user_ids=specialist_ids,
        type="offer.created",
        consult_id=consult.id,
        data={"consult": triage, "level": consult.level, "expires_at": expires_at.isoformat()},
    )


async def offers_withdrawn(
    session: AsyncSession, consult: Consult, specialist_ids: list[uuid.UUID], reason: str
) -> None:
    await emit(
        session,
        user_ids=specialist_ids,
        type="offer.withdrawn",
        consult_id=consult.id,
        data={"reason": reason},
    )


def people(consult: Consult) -> list[uuid.UUID]:
    """Who a consult's own news goes to: its requester, the client that requested it on their behalf
    (its socket listens on the channel of its id, as a user's does), and its assignee once there is one."""
    client = [consult.client_id] if consult.client_id else []
    return [consult.requester_id] + client + ([consult.assigned_to] if consult.assigned_to else [])


async def status_changed(session: AsyncSession, consult: Consult, *, alert: bool = False) -> None:
    """Tell the requester and assignee; put it on the coordinators' queue (as an alert if it needs a human)."""
    data = {
        "status": consult.status,
        "level": consult.level,
        "assigned_to": str(consult.assigned_to) if consult.assigned_to else None,
    }
    await emit(session, user_ids=people(consult), type="consult.status", consult_id=consult.id, data=data)
    await emit(
        session,
        channels=[channel_of_role(consult.org_id, "coordinator")],
        type="queue.alert" if alert else "queue.changed",
        consult_id=consult.id,
        data=data | {"specialty": consult.specialty, "urgency": consult.urgency},
    )


def channels_of(actor: Actor) -> list[str]:
    """Where an events socket listens: a user's own channels (and their roles' in the org); a client's
    own (the consults it requested), and its org's queue when its scopes hold consults:queue."""
    if actor.kind != "client":
        return own_channels(actor)
    queue = [channel_of_role(actor.org_id, "coordinator")] if actor.can(Perm.consults_queue) else []
    return own_channels(actor) + queue
