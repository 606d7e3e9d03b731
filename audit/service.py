"""Appending to, reading and verifying the audit chain."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, cast

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import commit
from audit.chain import event_hash
from audit.checkpoints import Checkpoint
from audit.models import GENESIS_HASH, AuditEvent, AuditHead
from audit.schemas import AuditEventOut


class Actor(Protocol):
    """Who acted, as far as the trail records them: auth.principal.Actor is one (audit sits below
    auth, so it imports none of it)."""

    # Read-only, so that frozen dataclasses with narrower fields (a signed-in Actor's id is never None) fit.
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> uuid.UUID | None: ...
    @property
    def org_id(self) -> uuid.UUID | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def client_addr(self) -> str | None: ...
    @property
    def is_platform_admin(self) -> bool: ...


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


async def record_list(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    items: Iterable[tuple[uuid.UUID | None, object]],
    item_type: str,
) -> None:
    """A listing: one event under the reader's org, and one per listed item that another org owns,
    under that org, so that its admin sees which of its records were read, and by whom.
    `items` are (owning org, id) pairs."""
    now = datetime.now(UTC)
    rows = [_row(actor, action, "success", actor.org_id, resource_type, None, None, now)]
    rows += [
        _row(actor, action, "success", owner, item_type, item_id, "listed", now)
        for owner, item_id in items
        if owner is not None and owner != actor.org_id
    ]
    await session.execute(insert(AuditEvent).values(rows))  # one statement: a page is at most 100 items


def _row(
    actor: Actor,
    action: str,
    outcome: str,
    org_id: uuid.UUID | None,
    resource_type: str | None,
    resource_id: object,
    reason: str | None,
    at: datetime,
) -> dict:
    return dict(
        at=at,
        actor_type=actor.kind,
        actor_id=str(actor.id) if actor.id else None,
        actor_org_id=actor.org_id,
        org_id=org_id,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        outcome=outcome,
        reason=reason,
        request_id=actor.request_id,
        client_addr=actor.client_addr,
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
) -> list[AuditEventOut]:
    """Events about the actor's org's data or by its members (all of them for the platform admin)."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc())
    if not actor.is_platform_admin:
        query = query.where(
            or_(col(AuditEvent.org_id) == actor.org_id, col(AuditEvent.actor_org_id) == actor.org_id)
        )
    if action:
        query = query.where(col(AuditEvent.action) == action)
    if resource_type:
        query = query.where(col(AuditEvent.resource_type) == resource_type)
    if since:
        query = query.where(col(AuditEvent.at) >= since)
    if until:
        query = query.where(col(AuditEvent.at) < until)
    rows = list((await session.execute(query.limit(limit).offset(offset))).scalars())
    await record(session, actor=actor, action="audit.list", org_id=actor.org_id, resource_type="audit")
    await commit(session)
    return [_shown(row, actor) for row in rows]


def _shown(row: AuditEvent, actor: Actor) -> AuditEventOut:
    """The event as the reader may see it. A refusal on another org's resource is filed under that org
    too (auth.denials); the refused org's own view leaves out whose it was, and the hash that would let
    it try candidate orgs, as the 404 it got did."""
    out = AuditEventOut.model_validate(row)
    if row.outcome == "denied" and row.org_id != actor.org_id and not actor.is_platform_admin:
        return out.model_copy(update={"org_id": None, "hash": None})
    return out


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str | None = None
    unsealed: int = 0  # committed rows not chained yet (the sealer runs every second or so)
    earliest_seq: int | None = None  # a rewrite against checkpoints lies in earliest_seq..broken_seq
    head_seq: int = 0


async def verify_chain(session: AsyncSession, batch: int = 1000) -> ChainReport:
    """Recompute every link in order; name the first one that does not hold."""
    expected_seq, prev, checked, last = 1, GENESIS_HASH, 0, 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(col(AuditEvent.seq) > last)
                    .order_by(col(AuditEvent.seq))
                    .limit(batch)
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
            # _check held: ev.seq is expected_seq, and ev.hash the (non-null) hash recomputed from the row.
            prev, checked, last = cast(str, ev.hash), checked + 1, expected_seq
            expected_seq += 1
        session.expunge_all()
    head = (await session.execute(select(AuditHead).where(col(AuditHead.id) == 1))).scalar_one()
    if head.seq != last or head.hash != prev:
        return ChainReport(
            False, checked, last + 1 if head.seq > last else last, "chain head does not match the last event"
        )
    unsealed = (
        await session.execute(
            select(func.count()).select_from(AuditEvent).where(col(AuditEvent.seq).is_(None))
        )
    ).scalar_one()
    return ChainReport(True, checked, unsealed=unsealed, head_seq=last)


def _check(ev: AuditEvent, expected_seq: int, prev: str) -> str | None:
    if ev.seq != expected_seq:
        return "missing"
    if ev.prev_hash != prev:
        return "previous hash does not match"
    if ev.hash != event_hash(ev, prev):
        return "event content does not match its hash"
    return None


async def verify_against(session: AsyncSession, checkpoints: list[Checkpoint]) -> ChainReport:
    """The chain, then each checkpoint in seq order: its row must still be there with its hash. The
    first it contradicts is named; a rewritten row lies after the last checkpoint that still holds."""
    report = await verify_chain(session)
    if not report.ok:
        return report
    wanted = sorted(checkpoints, key=lambda cp: cp.seq)
    stored = await _hashes(session, {cp.seq for cp in wanted})
    held = 0
    for cp in wanted:
        if cp.seq > report.head_seq:
            problem = f"rows from here on are gone: a checkpoint signed {cp.at} vouches for seq {cp.seq}"
            return replace(report, ok=False, broken_seq=report.head_seq + 1, problem=problem)
        if stored[cp.seq] != cp.hash:
            problem = (
                f"its hash is not the one checkpointed at {cp.at}: a row in seq {held + 1}..{cp.seq} was "
                "rewritten and the chain re-chained after it"
            )
            return replace(report, ok=False, broken_seq=cp.seq, earliest_seq=held + 1, problem=problem)
        held = cp.seq
    return report


async def _hashes(session: AsyncSession, seqs: set[int], batch: int = 1000) -> dict[int, str | None]:
    wanted, found = sorted(seqs), dict[int, str | None]()
    for i in range(0, len(wanted), batch):
        seq_col = col(AuditEvent.seq)
        query = select(seq_col, col(AuditEvent.hash)).where(seq_col.in_(wanted[i : i + batch]))
        # Rows matched by seq IN (...) are sealed ones: their seq is never NULL.
        found.update({seq: h for seq, h in (await session.execute(query)).all() if seq is not None})
    return found
