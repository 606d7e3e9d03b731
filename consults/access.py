"""Who sees how much of a consult: full content, the triage summary, or nothing (404)."""

import uuid
from enum import Enum
from typing import Protocol

from sqlalchemy import ColumnElement, Row, and_, bindparam, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreements.service import may_send, served
from api.db import commit
from audit.service import record_list
from auth.exceptions import Hidden
from auth.principal import Actor
from auth.roles import Perm
from consults.models import Consult, Offer, Participant


class View(Enum):
    full = "full"
    triage = "triage"


class Facts(Protocol):
    """What deciding a view reads of a consult: a Consult, or a row of these columns."""

    id: uuid.UUID
    org_id: uuid.UUID
    requester_id: uuid.UUID
    client_id: uuid.UUID | None
    assigned_to: uuid.UUID | None
    specialty: str


async def view_of(session: AsyncSession, actor: Actor, consult: Facts) -> View | None:
    """Requester (and the client that requested on their behalf), the requesting org's coordinators,
    the assignee and participants see it all; anyone offered it, the summary. Across orgs, only while
    an agreement still covers it."""
    if _own(actor, consult):
        return View.full
    return await _bounded(session, actor, consult, await _involvement(session, actor, consult))


def _own(actor: Actor, consult: Facts) -> bool:
    return consult.org_id == actor.org_id and (
        actor.id == consult.requester_id or actor.can(Perm.consults_queue) or _requested_by(actor, consult)
    )


def _requested_by(actor: Actor, consult: Facts) -> bool:
    """The client that requested it follows it while its token still holds consults:create."""
    return actor.kind == "client" and actor.id == consult.client_id and actor.can(Perm.consults_create)


async def _bounded(session: AsyncSession, actor: Actor, consult: Facts, view: View | None) -> View | None:
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


async def _involvement(session: AsyncSession, actor: Actor, consult: Facts) -> View | None:
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


def _involved(actor: Actor, row: Row) -> View | None:
    """`_involvement` from a row of `_ADMIT`, which read it in the same statement."""
    if actor.kind != "user":
        return None
    if actor.id == row.assigned_to or row.invited:
        return View.full
    return View.triage if row.offered else None


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


async def covered(session: AsyncSession, actor: Actor) -> ColumnElement[bool]:
    """A filter on consults: the actor's org's own, and other orgs' only where an agreement in force
    now still lets them to the actor's org (what `view_of` decides one consult at a time)."""
    partners = await served(session, providing_org_id=actor.org_id)
    return or_(
        col(Consult.org_id) == actor.org_id,
        *(
            and_(col(Consult.org_id) == org, col(Consult.specialty).in_(sorted(s)))
            for org, s in partners.items()
        ),
        false(),
    )


# What an event about a consult tells, so what its reader must still be allowed to see when it is
# sent (live or replayed). Every event type emitted with a consult id is named here
# (tests/consults/test_revocation.py checks the source); an unnamed one needs the full view.
EVENT_VIEWS: dict[str, View | None] = {
    "offer.created": View.triage,  # the triage summary
    "offer.withdrawn": None,  # only that an offer the reader held is gone: never withheld
    "consult.status": View.full,
    "queue.changed": View.full,
    "queue.alert": View.full,
    "message.created": View.full,
    "call.started": View.full,
    "call.ended": View.full,
    "webhook.disabled": View.full,  # carries no consult id (an org's endpoint, told to its admins)
}


# The consults of a batch of events with the reader's involvement, in one statement built once:
# sending an event is the hottest read there is (every offer, message and status change).
_ADMIT = select(
    col(Consult.id),
    col(Consult.org_id),
    col(Consult.requester_id),
    col(Consult.client_id),
    col(Consult.assigned_to),
    col(Consult.specialty),
    exists()
    .where(col(Participant.consult_id) == col(Consult.id), col(Participant.user_id) == bindparam("reader"))
    .label("invited"),
    exists()
    .where(col(Offer.consult_id) == col(Consult.id), col(Offer.specialist_id) == bindparam("reader"))
    .label("offered"),
).where(col(Consult.id).in_(bindparam("ids", expanding=True)))


async def admit(session: AsyncSession, actor: Actor, events: list[dict]) -> list[dict]:
    """The events (as sent: events.models.wire) the actor may still read now, decided per consult."""
    ids = {uuid.UUID(e["consult_id"]) for e in events if e.get("consult_id")}
    if not ids:
        return events
    rows = (await session.execute(_ADMIT, {"ids": sorted(ids), "reader": actor.id})).all()
    views = {
        str(r.id): View.full if _own(actor, r) else await _bounded(session, actor, r, _involved(actor, r))
        for r in rows
    }
    owners = {str(r.id): r.org_id for r in rows}
    admitted = [e for e in events if _admitted(e, views)]
    # What another org's consult told this reader is a read of that org's data: its admin sees it.
    foreign = {
        (owners[e["consult_id"]], uuid.UUID(e["consult_id"]))
        for e in admitted
        if e.get("consult_id") in owners
        and owners[e["consult_id"]] != actor.org_id
        and EVENT_VIEWS.get(e["event"], View.full) is not None
    }
    if foreign:
        await record_list(
            session,
            actor=actor,
            action="events.read",
            resource_type="events",
            items=foreign,
            item_type="consult",
        )
        await commit(session)
    else:
        await session.rollback()  # a read only: hand the connection back at once
    return admitted


def _admitted(event: dict, views: dict[str, View | None]) -> bool:
    if not event.get("consult_id"):
        return True
    need = EVENT_VIEWS.get(event["event"], View.full)
    view = views.get(event["consult_id"])
    return need is None or view is View.full or (view is View.triage and need is View.triage)
