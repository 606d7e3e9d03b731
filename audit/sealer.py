"""Sealing: committed audit rows join the hash chain, in order, one batch at a time.

Requests append rows without touching the chain's head (audit.service.record), so no request
waits on another's commit. Every node runs a sealer; each batch locks the head row, chains the
committed unsealed rows in id order after it, and moves the head. Only committed rows are seen,
and one batch at a time, so the chain never skips a row that commits late: that row is simply
sealed in a later batch."""

import asyncio
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import commit
from api.tasks import cancel, whole
from audit.chain import event_hash
from audit.models import AuditEvent, AuditHead
from audit.witness import Checkpointer

log = logging.getLogger("liaison.audit")
BATCH = 1000


async def seal(session: AsyncSession) -> int:
    """Chain the committed unsealed rows (up to a batch); how many were sealed."""
    if (
        await session.execute(select(col(AuditEvent.id)).where(col(AuditEvent.seq).is_(None)).limit(1))
    ).first() is None:
        await session.rollback()
        return 0
    head = (
        await session.execute(select(AuditHead).where(col(AuditHead.id) == 1).with_for_update())
    ).scalar_one()
    rows = list(
        (
            await session.execute(
                select(AuditEvent)
                .where(col(AuditEvent.seq).is_(None))
                .order_by(col(AuditEvent.id))
                .limit(BATCH)
            )
        ).scalars()
    )
    sealed = []
    for row in rows:
        row.seq, row.prev_hash = head.seq + 1, head.hash
        row.hash = event_hash(row, head.hash)
        head.seq, head.hash = row.seq, row.hash
        sealed.append({"id": row.id, "seq": row.seq, "prev_hash": row.prev_hash, "hash": row.hash})
    session.expunge_all()  # written below in one statement per row, not as ORM flushes
    await session.execute(update(AuditEvent), sealed)
    await session.execute(
        update(AuditHead).where(col(AuditHead.id) == 1).values(seq=head.seq, hash=head.hash)
    )
    await commit(session)
    return len(sealed)


async def seal_all(sessions: async_sessionmaker) -> int:
    """Seal until nothing is left (the CLI before verifying, and tests)."""
    total = 0
    while True:
        async with sessions() as session:
            done = await seal(session)
        if not done:
            return total
        total += done


class Sealer:
    """One per process, every `seconds`; several nodes take turns on the head's lock. With a
    checkpointer, the head it sealed is signed and sent out of the database after the round."""

    def __init__(
        self, sessions: async_sessionmaker, *, seconds: float, checkpointer: Checkpointer | None = None
    ) -> None:
        self._sessions = sessions
        self._seconds = seconds
        self._checkpointer = checkpointer
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._seconds)
            try:
                sealed = await whole(seal_all(self._sessions))
                if self._checkpointer is not None:
                    if sealed:
                        self._checkpointer.sealed()
                    await self._checkpointer.after_sealing(self._sessions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the rows wait, unsealed, for the next round
                log.warning("audit sealing failed (%s: %s); retrying", type(exc).__name__, exc)
