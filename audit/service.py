"""Appending to, reading and verifying the audit chain."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import commit
from audit.chain import event_hash
from audit.models import GENESIS_HASH, AuditEvent, AuditHead


class Actor(Protocol):
    """Who acted, as far as the trail records them: auth.principal.Actor is one (audit sits below
    auth, so it imports none of it)."""

    kind: str
    id: uuid.UUID | None
    org_id: uuid.UUID | None
    request_id: str | None
    client_addr: str | None
    is_platform_admin: bool


# Built once: every audited request appends, and building the statement costs more than running it.
_APPEND = insert(AuditEvent)


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    org_id: uuid.UUID | None = None,
    resource_type: str | None = None,
    resource_id: object = None,
    reason: str | None = None,
) -> None:
    """Append one unsealed event inside the caller's transaction: one INSERT, no shared lock.
    It joins the hash chain after it commits (audit.sealer)."""
    await session.execute(
        _APPEND,
        {
            "at": datetime.now(UTC),
            "actor_type": actor.kind,
            "actor_id": str(actor.id) if actor.id else None,
            "actor_org_id": actor.org_id,
            "org_id": org_id,
            "action": action,
            "resource_type": resource_type,
            "resource_id": str(resource_id) if resource_id is not None else None,
            "outcome": outcome,
            "reason": reason,
            "request_id": actor.request_id,
            "client_addr": actor.client_addr,
        },
    )


async def record_alone(sessions: async_sessionmaker[AsyncSession], **fields) -> None:
    """Append one event in its own transaction: for refusals, whose request rolls back."""
    async with sessions() as session:
        await record(session, **fields)
        await commit(session)


async def list_events(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str | None,
    resource_type: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> list[AuditEvent]:
    """Events about the actor's org's data or by its members (all of them for the platform admin)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if not actor.is_platform_admin:
        query = query.where(or_(AuditEvent.org_id == actor.org_id, AuditEvent.actor_org_id == actor.org_id))
    if action:
        query = query.where(AuditEvent.action == action)
    if resource_type:
        query = query.where(AuditEvent.resource_type == resource_type)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    rows = list((await session.execute(query.limit(limit).offset(offset))).scalars())
    await record(session, actor=actor, action="audit.list", org_id=actor.org_id, resource_type="audit")
    await commit(session)
    return rows


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str | None = None
    unsealed: int = 0  # committed rows not chained yet (the sealer runs every second or so)


async def verify_chain(session: AsyncSession, batch: int = 1000) -> ChainReport:
    """Recompute every link in order; name the first one that does not hold."""
    expected_seq, prev, checked, last = 1, GENESIS_HASH, 0, 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for ev in rows:
            bad = _check(ev, expected_seq, prev)
            if bad:
                return ChainReport(False, checked, ev.seq if bad != "missing" else expected_seq, bad)
            prev, expected_seq, checked, last = ev.hash, ev.seq + 1, checked + 1, ev.seq
        session.expunge_all()
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
    if head.seq != last or head.hash != prev:
        return ChainReport(
            False, checked, last + 1 if head.seq > last else last, "chain head does not match the last event"
        )
    unsealed = (
        await session.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None)))
    ).scalar_one()
    return ChainReport(True, checked, unsealed=unsealed)


def _check(ev: AuditEvent, expected_seq: int, prev: str) -> str | None:
    if ev.seq != expected_seq:
        return "missing"
    if ev.prev_hash != prev:
        return "previous hash does not match"
    if ev.hash != event_hash(ev, prev):
        return "event content does not match its hash"
    return None
