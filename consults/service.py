"""Creating, reading, listing and cancelling consults."""

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.errors import InvalidInput
from api.schemas import PageParams
from audit.service import record, record_list
from auth.delegation import clinician_for
from auth.exceptions import PermissionDenied
from auth.principal import Actor
from auth.roles import Perm
from consults import access, stats, transitions
from consults.escalation import advance
from consults.exceptions import IdempotencyInFlight, IdempotencyMismatch
from consults.lifecycle import Event, transition
from consults.models import Consult
from consults.schemas import ConsultIn, ConsultOut


async def create(
    session: AsyncSession, *, actor: Actor, data: ConsultIn, idempotency_key: str | None
) -> tuple[Consult, bool]:
    """Store the consult and make its first offers in one transaction; (consult, created?)."""
    requester = await _requester(session, actor, data.on_behalf_of)
    client_id = actor.id if actor.kind == "client" else None
    keyed = (idempotency_key, _body_hash(data)) if idempotency_key else None
    if keyed and (prior := await _replay(session, requester, client_id, *keyed)):
        return prior, False
    now = datetime.now(UTC)
    consult = Consult(
        org_id=requester.org_id,
        requester_id=requester.id,
        client_id=client_id,
        **data.model_dump(exclude={"on_behalf_of"}),
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        request_hash=keyed[1] if keyed else None,
    )
    session.add(consult)
    if keyed and (prior := await _claim_key(session, requester, client_id, *keyed)):
        return prior, False
    # Not flushed before routing: the consult's row goes in once, as routing leaves it, with its
    # offers and step (one INSERT rather than an INSERT and an UPDATE).
    with session.no_autoflush:
        await advance(session, consult, now, fresh=True)
    if idempotency_key:
        # Stored with the consult, so that a retry, even one after it has moved on, answers as we first did.
        consult.first_answer = answer(consult).model_dump(mode="json")
    await _audit_creation(session, actor, requester, consult)
    await commit(session)
    return consult, True


async def _claim_key(
    session: AsyncSession, requester: Actor, client_id: uuid.UUID | None, key: str, digest: str
) -> Consult | None:
    """Store the keyed consult now, so that a concurrent request with the same key fails here, not
    at commit: None, or the consult that request created once it has committed (to replay)."""
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if prior := await _replay(session, requester, client_id, key, digest):
            return prior
        raise IdempotencyInFlight() from None
    return None


async def _requester(session: AsyncSession, actor: Actor, on_behalf_of: uuid.UUID | None) -> Actor:
    """Who requests: the signed-in clinician, or the clinician a client names (of its own org)."""
    if actor.kind != "client":
        if on_behalf_of is not None and on_behalf_of != actor.id:
            raise PermissionDenied("Only integration clients request consults on someone's behalf")
        return actor
    if on_behalf_of is None:
        raise InvalidInput("An integration client names the clinician it requests for: on_behalf_of")
    return await clinician_for(session, actor=actor, user_id=on_behalf_of)


async def _audit_creation(session: AsyncSession, actor: Actor, requester: Actor, consult: Consult) -> None:
    """One row per principal: a client's request is filed as the client's and as the clinician's, each
    naming the other, so that either one's trail shows it."""
    rows: list[tuple[Actor, str | None]] = [(actor, None)]
    if requester is not actor:
        rows = [(actor, f"on_behalf_of:{requester.id}"), (requester, f"via_client:{actor.id}")]
    for who, reason in rows:
        await record(
            session,
            actor=who,
            action="consult.create",
            org_id=consult.org_id,
            resource_type="consult",
            resource_id=consult.id,
            reason=reason,
        )


def answer(consult: Consult) -> ConsultOut:
    """The consult as its participants see it, with its clocks."""
    return ConsultOut.model_validate(consult).model_copy(update={"clocks": stats.clocks(consult)})


def first_answer(consult: Consult) -> dict:
    """What a replay of the request that created `consult` answers."""
    # Consults keyed before first answers were stored (migration 0007) have only their present.
    return (
        consult.first_answer if consult.first_answer is not None else answer(consult).model_dump(mode="json")
    )


async def get(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID) -> tuple[Consult, access.View]:
    """One consult, at the detail the caller may see."""
    consult, view = await access.load(session, actor, consult_id, need=access.View.triage)
    await record(
        session,
        actor=actor,
        action="consult.read",
        org_id=consult.org_id,
        resource_type="consult",
        resource_id=consult.id,
        reason=view.value,
    )
    await commit(session)
    return consult, view


async def list_consults(
    session: AsyncSession,
    *,
    actor: Actor,
    status: str | None,
    specialty: str | None,
    urgency: str | None,
    page: PageParams,
    narrow: Sequence[ColumnElement[bool]] = (),
) -> list[Consult]:
    """Coordinators: the org's queue; others: what they requested or were assigned; `narrow` adds
    conditions on consults (FHIR's search parameters)."""
    # The same boundary as GET /consults/{id}: an assignee of another org sees nothing once the
    # agreement that opened the consult is suspended, revoked or out of date.
    query = (
        select(Consult).where(await access.covered(session, actor)).order_by(col(Consult.created_at).desc())
    )
    if actor.can(Perm.consults_queue):
        query = query.where(or_(col(Consult.org_id) == actor.org_id, col(Consult.assigned_to) == actor.id))
    elif actor.kind == "client":
        query = query.where(col(Consult.client_id) == actor.id, col(Consult.org_id) == actor.org_id)
    else:
        query = query.where(or_(col(Consult.requester_id) == actor.id, col(Consult.assigned_to) == actor.id))
    for column, value in (
        (col(Consult.status), status),
        (col(Consult.specialty), specialty),
        (col(Consult.urgency), urgency),
    ):
        if value:
            query = query.where(column == value)
    if narrow:
        query = query.where(*narrow)
    rows = list((await session.execute(query.limit(page.limit + 1).offset(page.offset))).scalars())
    await record_list(
        session,
        actor=actor,
        action="consult.list",
        resource_type="consult",
        items=[(c.org_id, c.id) for c in rows[: page.limit]],
        item_type="consult",
    )
    await commit(session)
    return rows


async def cancel(session: AsyncSession, *, actor: Actor, consult_id: uuid.UUID) -> Consult:
    """The requester or a coordinator of the requesting org cancels, any time before completion."""
    consult, _ = await access.load(session, actor, consult_id, lock=True)
    if not (
        actor.id == consult.requester_id
        or (actor.can(Perm.consults_queue) and actor.org_id == consult.org_id)
    ):
        raise PermissionDenied("Only the requester or a coordinator of the requesting org may cancel")
    change = transition(consult, Event.cancel, at=datetime.now(UTC))
    await transitions.apply(session, change, actor=actor)
    await commit(session)
    return consult


async def _replay(
    session: AsyncSession, requester: Actor, client_id: uuid.UUID | None, key: str, digest: str
) -> Consult | None:
    """The consult first created with this key, if any; the same key with another body is refused.
    A client's keys and its clinician's own are apart: neither replays the other's consult."""
    query = select(Consult).where(
        col(Consult.requester_id) == requester.id,
        col(Consult.idempotency_key) == key,
        col(Consult.client_id) == client_id if client_id else col(Consult.client_id).is_(None),
    )
    prior = (await session.execute(query)).scalar_one_or_none()
    if prior is not None and prior.request_hash != digest:
        raise IdempotencyMismatch()
    return prior


def _body_hash(data: ConsultIn) -> str:
    return hashlib.sha256(json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
