"""The record of each call: who joined and left when, the call's start and end, and its events.

Joins and departures are stamped when they happen and written shortly after, in batches, by one
task per node. The database stays off the path of a call being set up (two joins and the
negotiation), and a burst of joins costs one transaction instead of one each."""

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from api.db import commit
from api.errors import log_failure
from api.tasks import cancel, whole
from consults import calls
from consults.models import Consult
from consults.notify import people
from events.service import emit
from signaling.calls.control import room_of
from signaling.models import Attendance, Call

log = logging.getLogger("liaison.signaling")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Joined:
    consult_id: uuid.UUID
    user_id: uuid.UUID
    peer_id: str
    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Left:
    consult_id: uuid.UUID
    peer_id: str
    at: datetime = field(default_factory=_now)


async def record_attendance(session: AsyncSession, *, changes: list[Joined | Left]) -> None:
    """Apply joins and departures in the order they happened; one commit for all of them."""
    for change in changes:
        consult = await calls.lock(session, change.consult_id)
        await (
            _joined(session, consult, change)
            if isinstance(change, Joined)
            else _left(session, consult, change)
        )
    await commit(session)


async def _joined(session: AsyncSession, consult: Consult, change: Joined) -> None:
    """The first peer in starts a call (and puts the consult in session)."""
    call = (
        await session.execute(
            select(Call).where(col(Call.consult_id) == consult.id, col(Call.ended_at).is_(None))
        )
    ).scalar_one_or_none()
    if call is None:
        call = Call(consult_id=consult.id, room=room_of(consult.id), started_at=change.at)
        session.add(call)
        await session.flush()
        await emit(
            session,
            user_ids=people(consult),
            type="call.started",
            consult_id=consult.id,
            data={"call_id": str(call.id)},
        )
    session.add(
        Attendance(call_id=call.id, user_id=change.user_id, peer_id=change.peer_id, joined_at=change.at)
    )
    await session.flush()
    calls.joined(consult, change.user_id, change.at)


async def _left(session: AsyncSession, consult: Consult, change: Left) -> None:
    """Close the peer's attendance; the last one out ends the call."""
    row = (
        await session.execute(
            select(Attendance).where(
                col(Attendance.peer_id) == change.peer_id, col(Attendance.left_at).is_(None)
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return
    row.left_at = change.at
    await session.flush()
    still_in = (
        await session.execute(
            select(col(Attendance.id)).where(
                col(Attendance.call_id) == row.call_id, col(Attendance.left_at).is_(None)
            )
        )
    ).first()
    if still_in is None:
        call = await session.get(Call, row.call_id)
        if call is None:  # an attendance row always has its call (a foreign key)
            return
        call.ended_at = change.at
        await emit(
            session,
            user_ids=people(consult),
            type="call.ended",
            consult_id=consult.id,
            data={
                "call_id": str(call.id),
                "seconds": round((change.at - call.started_at).total_seconds(), 1),
            },
        )


class RecordWriter:
    """This node's one writer of attendance: waits `delay` after the first change, then writes all
    changes that came meanwhile in one transaction (each alone if that fails, so one bad change
    loses no others)."""

    def __init__(self, sessions: async_sessionmaker, delay: float) -> None:
        self._sessions, self._delay = sessions, delay
        self._queue: asyncio.Queue[Joined | Left] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def add(self, change: Joined | Left) -> None:
        self._queue.put_nowait(change)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signaling-records")

    async def stop(self, timeout: float = 5.0) -> None:
        """Write what was recorded so far (within `timeout`), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout + self._delay)
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self._delay)
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await whole(self._write(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Joined | Left]) -> None:
        try:
            async with self._sessions() as session:
                await record_attendance(session, changes=batch)
            return
        except Exception as exc:
            if len(batch) == 1:  # the call goes on even if its record could not be written; the log says so
                log_failure(log, "could not record call attendance", exc)
                return
        for change in batch:
            await self._write([change])
