"""The event log: sequences committed events in commit order and feeds every node's subscribers.

Every node runs one `EventLog`. A commit that stored events kicks its own node's log, which
1. sequences: under the log's lock (the `event_log` row), gives every committed, unsequenced event
   the next positions, in one UPDATE ... RETURNING. Sequencing runs one step at a time across
   nodes and only sees committed rows, so positions grow in commit order (events.models);
2. hands what it sequenced to its own subscribers, and publishes the same batch (Redis, if any)
   to the other nodes, which take it as it is when it follows on from what they have, and read
   the log from the database when it does not (a batch missed, or arrived out of order).
Every `poll` seconds each node also sequences what a dead node left and reads what it missed —
all that happens, slower, while Redis is away."""

import asyncio
import contextlib
import logging
import time
import uuid

from sqlalchemy import JSON, BigInteger, String, Uuid, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from sqlmodel.sql.sqltypes import UTCDateTime

from api.db import commit
from api.tasks import cancel, whole, woken
from events.bus import Feed, LocalBus
from events.models import Event, EventLogRow, wire

log = logging.getLogger("liaison.events")
BATCH = 1000

_SEQUENCE = text(
    "UPDATE events SET pos = s.pos FROM ("
    " SELECT id, (SELECT COALESCE(MAX(pos), 0) FROM events) + row_number() OVER (ORDER BY id) AS pos"
    " FROM events WHERE pos IS NULL ORDER BY id LIMIT :batch) AS s "
    "WHERE events.id = s.id "
    "RETURNING events.pos, events.channel, events.type, events.consult_id, events.data, events.created_at"
).columns(pos=BigInteger, channel=String, type=String, consult_id=Uuid, data=JSON, created_at=UTCDateTime)

_LOCK = select(col(EventLogRow.id)).where(col(EventLogRow.id) == 1).with_for_update()


async def sequence(session: AsyncSession) -> list[dict]:
    """Give committed, unsequenced events their positions; them, as clients receive them, in order."""
    # The lock comes first, in its own statement, so that the UPDATE's snapshot (READ COMMITTED:
    # one per statement) sees everything the previous holder sequenced and committed.
    await session.execute(_LOCK)
    rows = (await session.execute(_SEQUENCE, {"batch": BATCH})).all()
    await commit(session)
    return sorted((wire(row) for row in rows), key=lambda e: e["id"])


async def unsequenced(session: AsyncSession) -> bool:
    found = (
        await session.execute(select(col(Event.id)).where(col(Event.pos).is_(None)).limit(1))
    ).first() is not None
    await session.rollback()
    return found


class EventLog:
    """One per process: kicked by its own commits, fed by other nodes, polling as a fallback."""

    def __init__(self, *, bus: LocalBus, feed: Feed, poll_seconds: float) -> None:
        self.bus = bus
        self._feed = feed
        self._poll = poll_seconds
        self._kicked = asyncio.Event()
        self._mine = False  # this node committed events since the last step: there is sequencing to do
        self._behind = asyncio.Event()
        self._sessions: async_sessionmaker | None = None
        self._task: asyncio.Task | None = None
        self.node = uuid.uuid4().hex
        self.position: int | None = None  # the last position handed to this node's bus; None: not read yet

    def kick(self) -> None:
        """This node committed events: sequence them now."""
        self._mine = True
        self._kicked.set()

    async def start(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions
        with contextlib.suppress(Exception):  # a database that is down at start is read once it is back
            await self._start_position()
        await self._feed.start(self._heard)
        self._task = asyncio.create_task(self._run(), name="event-log")

    async def stop(self) -> None:
        await self._feed.stop()
        await cancel(self._task)

    def _heard(self, node: str, batch: list[dict] | None) -> None:
        """Another node sequenced `batch`: take it if it follows on, else read the log."""
        if batch is None:  # the feed (re)connected: what it missed is in the database
            self._behind.set()
            self._kicked.set()
        elif batch and node != self.node:
            self._take(batch)

    def _take(self, batch: list[dict]) -> None:
        if self.position is None or batch[0]["id"] > self.position + 1:
            self._behind.set()  # something came before it that we have not seen: the database has it
            self._kicked.set()
            return
        fresh = [e for e in batch if e["id"] > self.position]
        if fresh:
            self.bus.deliver(fresh)
            self.position = fresh[-1]["id"]

    async def _run(self) -> None:
        due = time.monotonic() + self._poll  # the next poll, however often kicks come meanwhile
        while True:
            await woken(self._kicked, max(due - time.monotonic(), 0.0))
            self._kicked.clear()
            polled = time.monotonic() >= due
            if polled:
                due = time.monotonic() + self._poll
            try:
                await whole(self.step(polled=polled))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or Redis is away: the next poll tries again
                log.warning("event log step failed (%s: %s); retrying", type(exc).__name__, exc)

    async def step(self, *, polled: bool = True) -> None:
        """Sequence what is committed and deliver it; on a poll or a gap, also read what was missed."""
        assert self._sessions is not None
        if self.position is None:
            await self._start_position()
        mine, self._mine = self._mine, False
        async with self._sessions() as session:
            batch = await sequence(session) if mine or (polled and await unsequenced(session)) else []
        if batch:
            self._take(batch)
            with contextlib.suppress(Exception):  # without Redis the other nodes find it on their poll
                await self._feed.publish(self.node, batch)
        if polled or self._behind.is_set():
            self._behind.clear()
            await self._drain()

    async def _start_position(self) -> None:
        """Begin at the log's end: subscribers come later, and history is theirs to replay."""
        assert self._sessions is not None
        async with self._sessions() as session:
            row = (await session.execute(select(EventLogRow).where(col(EventLogRow.id) == 1))).scalar_one()
            last = (
                await session.execute(select(col(Event.pos)).order_by(col(Event.pos).desc()).limit(1))
            ).scalar()
        self._feed.name(row.log_id)
        self.position = last or 0

    async def _drain(self) -> None:
        """Read the log past this node's position and deliver it."""
        assert self._sessions is not None
        async with self._sessions() as session:
            while True:
                rows = (
                    await session.execute(
                        select(
                            col(Event.pos),
                            col(Event.channel),
                            col(Event.type),
                            col(Event.consult_id),
                            col(Event.data),
                            col(Event.created_at),
                        )
                        .where(col(Event.pos) > self.position)
                        .order_by(col(Event.pos))
                        .limit(BATCH)
                    )
                ).all()
                if rows:  # the database is the log itself: what it says follows on, by definition
                    self.bus.deliver([wire(row) for row in rows])
                    self.position = rows[-1].pos
                if len(rows) < BATCH:
                    return
