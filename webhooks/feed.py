"""Feeding endpoints from the stored event log: each endpoint's cursor moves in the transaction that
stores the deliveries it read, so whatever the log holds past a cursor is delivered, once, in order,
on whichever node gets there first (the endpoint's row is locked; others skip it)."""

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from consults.models import Consult, Message
from events.models import Event, channel_of_role
from webhooks.derive import FIRST_LEVEL, OFFER, QUEUE, SOURCES, Derived, derive, payload
from webhooks.models import WebhookDelivery, WebhookEndpoint

BATCH = 500
_ROW = (
    col(Event.pos),
    col(Event.channel),
    col(Event.type),
    col(Event.consult_id),
    col(Event.data),
    col(Event.created_at),
)


async def head(session: AsyncSession) -> int:
    """The log's last position: a cursor there has everything sequenced so far."""
    return (await session.execute(select(func.max(Event.pos)))).scalar() or 0


async def due_endpoints(session: AsyncSession) -> tuple[list[uuid.UUID], bool]:
    """Enabled endpoints whose cursor is behind the log, and whether any endpoint is enabled at all."""
    # One statement: this runs on every batch of events, on every node, endpoints or none.
    last = select(func.max(Event.pos)).scalar_subquery()
    rows = (
        await session.execute(
            select(col(WebhookEndpoint.id), col(WebhookEndpoint.cursor) < last).where(
                col(WebhookEndpoint.enabled).is_(True)
            )
        )
    ).all()
    await session.rollback()
    return [endpoint_id for endpoint_id, behind in rows if behind], bool(rows)


async def feed_one(session: AsyncSession, endpoint_id: uuid.UUID) -> int:
    """Store the endpoint's deliveries for the next stretch of the log and move its cursor; how many."""
    endpoint = (
        await session.execute(
            select(WebhookEndpoint)
            .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.enabled).is_(True))
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
    if endpoint is None:  # another node holds it, or it was disabled meanwhile
        await session.rollback()
        return 0
    last = await head(session)  # read before the rows: a position given later is past it
    rows = await _rows(session, endpoint, last)
    events = await _derived(session, endpoint, rows)
    events = await _fresh(session, endpoint, events)
    extra = await _clinical(session, events) if endpoint.include_clinical else {}
    for event in events:
        body = payload(event, seq=endpoint.next_seq)
        body["data"] |= extra.get(event.key, {})
        session.add(_delivery(endpoint, event, body))
        endpoint.next_seq += 1
    endpoint.cursor = rows[-1].pos if len(rows) == BATCH else max(last, endpoint.cursor)
    await commit(session)
    return len(events)


async def _rows(session: AsyncSession, endpoint: WebhookEndpoint, last: int) -> list[Any]:
    query = (
        select(*_ROW)
        .join(Consult, col(Consult.id) == col(Event.consult_id))
        .where(
            col(Event.pos) > endpoint.cursor,
            col(Event.pos) <= last,
            col(Event.type).in_(SOURCES),
            col(Consult.org_id) == endpoint.org_id,
        )
        .order_by(col(Event.pos))
        .limit(BATCH)
    )
    return list((await session.execute(query)).all())


async def _derived(session: AsyncSession, endpoint: WebhookEndpoint, rows: list[Any]) -> list[Derived]:
    """The events the endpoint asked for, one per key, in log order."""
    queue = channel_of_role(endpoint.org_id, "coordinator")
    rows = [r for r in rows if r.type not in QUEUE or r.channel == queue]
    firsts = await _first_positions(session, queue, {r.consult_id for r in rows if r.type in QUEUE})
    levels = await _first_levels(session, {r.consult_id for r in rows if r.type == OFFER})
    wanted, seen, out = set(endpoint.event_types), set(), []
    for row in rows:
        made = derive(
            row, created=firsts.get(row.consult_id) == row.pos, first_level=levels.get(row.consult_id)
        )
        for event in made:
            if event.type in wanted and event.key not in seen:
                seen.add(event.key)
                out.append(event)
    return out


async def _first_positions(
    session: AsyncSession, queue: str, consults: set[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Each consult's first position on its org's queue: the news of its creation."""
    if not consults:
        return {}
    rows = await session.execute(
        select(col(Event.consult_id), func.min(Event.pos))
        .where(col(Event.channel) == queue, col(Event.type).in_(QUEUE), col(Event.consult_id).in_(consults))
        .group_by(col(Event.consult_id))
    )
    return {cid: pos for cid, pos in rows.all() if cid is not None and pos is not None}


async def _first_levels(session: AsyncSession, consults: set[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The lowest level each consult was offered at: offers above it are an escalation."""
    if not consults:
        return {}
    rows = await session.execute(
        select(col(Event.consult_id), col(Event.data)).where(
            col(Event.type) == OFFER, col(Event.consult_id).in_(consults)
        )
    )
    out: dict[uuid.UUID, int] = {}
    for cid, data in rows.all():
        if cid is not None:
            level = data.get("level") or FIRST_LEVEL
            out[cid] = min(out.get(cid, level), level)
    return out


async def _fresh(session: AsyncSession, endpoint: WebhookEndpoint, events: list[Derived]) -> list[Derived]:
    """Drop what an earlier stretch already delivered (a message's copies may straddle two)."""
    if not events:
        return events
    known = set(
        (
            await session.execute(
                select(col(WebhookDelivery.event_key)).where(
                    col(WebhookDelivery.endpoint_id) == endpoint.id,
                    col(WebhookDelivery.event_key).in_([e.key for e in events]),
                )
            )
        ).scalars()
    )
    return [e for e in events if e.key not in known]


async def _clinical(session: AsyncSession, events: list[Derived]) -> dict[str, dict]:
    """Clinical text for an endpoint whose org opted in: a new consult's question, a message's body."""
    out: dict[str, dict] = {}
    for event in events:
        if event.type == "consult.created":
            consult = await session.get(Consult, event.consult_id)
            if consult is not None:
                out[event.key] = {"question": consult.question, "details": consult.details}
        elif event.type == "message.created" and event.data.get("message_id"):
            message = await session.get(Message, uuid.UUID(event.data["message_id"]))
            if message is not None:
                out[event.key] = {"body": message.body}
    return out


def _delivery(endpoint: WebhookEndpoint, event: Derived, body: dict) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint_id=endpoint.id,
        org_id=endpoint.org_id,
        seq=endpoint.next_seq,
        event_key=event.key,
        position=event.position,
        type=event.type.value,
        consult_id=event.consult_id,
        payload=body,
    )
