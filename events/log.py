"""The event log: sequences committed events in commit order and feeds each node's subscribers.

Every node runs one `EventLog`. A commit that stored events kicks it; it then
1. sequences: under a lock on the cursor row, gives every committed, unsequenced event the next
   positions. Sequencing runs one step at a time across nodes, and only sees committed rows, so
   positions grow in commit order (events.models);
2. rings the other nodes (Redis, if any) so they need not wait for their poll;
3. drains: reads the events past this node's own cursor, in order, and hands them to its bus.
It also wakes every `poll` seconds, so that an event committed by a node that died before
sequencing it, or rung while Redis was down, is still sequenced and delivered within a poll."""

import asyncio
import contextlib
import logging

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import commit
from events.bus import LocalBus, Wake
from events.models import Event, EventCursor

log = logging.getLogger("liaison.events")
BATCH = 1000

_SEQUENCE = text(
    "UPDATE events SET pos = s.pos FROM ("
    " SELECT id, :base + row_number() OVER (ORDER BY id) AS pos FROM events"
    " WHERE pos IS NULL ORDER BY id LIMIT :batch) AS s "
    "WHERE events.id = s.id")


async def sequence(session: AsyncSession) -> int:
    """Give committed, unsequenced events their positions; how many it sequenced."""
    if (await session.execute(select(Event.id).where(Event.pos.is_(None)).limit(1))).first() is None:
        await session.rollback()
        return 0
    cursor = (await session.execute(
        select(EventCursor).where(EventCursor.id == 1).with_for_update())).scalar_one()
    done = (await session.execute(_SEQUENCE, {"base": cursor.last_pos, "batch": BATCH})).rowcount
    cursor.last_pos += done
    await commit(session)
    return done


class EventLog:
    """One per process: kicked by its own commits, rung by other nodes, and polling as a fallback."""

    def __init__(self, *, bus: LocalBus, wake: Wake, poll_seconds: float) -> None:
        self.bus = bus
        self._wake = wake
        self._poll = poll_seconds
        self._kicked = asyncio.Event()
        self._sessions: async_sessionmaker | None = None
        self._task: asyncio.Task | None = None
        self.position: int | None = None  # the last position handed to this node's bus; None: not read yet

    def kick(self) -> None:
        """Something was committed with events (here), or rung (elsewhere): look now."""
        self._kicked.set()

    async def start(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions
        with contextlib.suppress(Exception):  # a database that is down at start is read once it is back
            await self._start_position()
        await self._wake.start(self.kick)
        self._task = asyncio.create_task(self._run(), name="event-log")

    async def stop(self) -> None:
        await self._wake.stop()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self._poll)
            self._kicked.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or Redis is away: the next poll tries again
                log.warning("event log step failed (%s: %s); retrying", type(exc).__name__, exc)

    async def step(self) -> None:
        """Sequence what is committed, ring the other nodes if that found any, deliver what is new."""
        assert self._sessions is not None
        async with self._sessions() as session:
            sequenced = await sequence(session)
        if sequenced:
            with contextlib.suppress(Exception):  # without Redis the other nodes find them on their poll
                await self._wake.ring()
        await self._drain()

    async def _start_position(self) -> None:
        """Begin at the log's end: subscribers come later, and history is theirs to replay."""
        assert self._sessions is not None
        async with self._sessions() as session:
            self.position = (await session.execute(select(func.coalesce(func.max(Event.pos), 0)))).scalar_one()

    async def _drain(self) -> None:
        assert self._sessions is not None
        if self.position is None:
            await self._start_position()
        async with self._sessions() as session:
            while True:
                rows = list((await session.execute(
                    select(Event).where(Event.pos > self.position).order_by(Event.pos).limit(BATCH))).scalars())
                if not rows:
                    return
                self.bus.deliver([row.wire() for row in rows])
                self.position = rows[-1].pos
                session.expunge_all()
