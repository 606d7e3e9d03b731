"""Each node's delivery worker: feeds endpoints from the log, then sends what is due.

It wakes when the node's event log hands over events a webhook may be derived from (whether this
node sequenced them or heard them through Redis), and every poll_seconds regardless, so that a Redis
outage slows deliveries by at most that and loses none: the log and the deliveries are in the
database, and Redis only wakes the worker sooner. A wake-up costs one statement, and none while the
last look found no endpoint enabled: an endpoint enabled since is fed from the next poll."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import log_failure
from api.settings import Settings
from api.tasks import cancel, whole, woken
from events.bus import LocalBus
from webhooks import attempts, feed
from webhooks.derive import SOURCES
from webhooks.sender import Job, send

log = logging.getLogger("liaison.webhooks")
T = TypeVar("T")


class WebhookWorker:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, settings: Settings, bus: LocalBus
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._bus = bus
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        self._idle_until = (
            0.0  # (monotonic) no endpoint was enabled at the last look: wakes till then skip it
        )

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        # No proxy from the environment, no redirect followed: the guard checks where we connect.
        self._client = httpx.AsyncClient(
            timeout=self._settings.webhooks_timeout_seconds, follow_redirects=False, trust_env=False
        )
        self._bus.watch(self._heard)
        self._task = asyncio.create_task(self._loop(), name="webhook-worker")

    async def stop(self) -> None:
        self._bus.unwatch(self._heard)
        await cancel(self._task)
        if self._client is not None:
            await self._client.aclose()

    def _heard(self, events: list[dict]) -> None:
        if any(e["event"] in SOURCES for e in events):
            self._wake.set()

    async def _loop(self) -> None:
        poll = self._settings.webhooks_poll_seconds
        due = time.monotonic() + poll  # the next full step, however often events wake the worker
        while True:
            await woken(self._wake, max(due - time.monotonic(), 0.0))
            self._wake.clear()
            polled = time.monotonic() >= due
            if polled:
                due = time.monotonic() + poll
            try:
                await self.step(polled=polled)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "webhook step failed; what it had not recorded is retried", exc)

    async def step(self, *, polled: bool = True) -> None:
        """Feed every endpoint that is behind the log, then send until nothing is due."""
        if not polled and time.monotonic() < self._idle_until:
            return  # no endpoint anywhere at the last look; one enabled since is fed from the next poll
        due, enabled = await self._in_session(feed.due_endpoints)
        self._idle_until = 0.0 if enabled else time.monotonic() + self._settings.webhooks_poll_seconds
        fed = 0
        for endpoint_id in due:
            fed += await self._in_session(feed.feed_one, endpoint_id)
        if not (fed or polled):
            # Woken by events that fed nothing here: no endpoint wants them, or another node fed
            # them and sends them itself. Retries and a dead node's deliveries wait for the poll.
            return
        while True:
            jobs = await self._in_session(attempts.claim, now=datetime.now(UTC), settings=self._settings)
            if not jobs:
                return
            # One consult's deliveries to an endpoint go one after another, in sequence, so a healthy
            # receiver gets each consult's news in order; the rest go side by side. (A retry may be
            # overtaken: payloads carry the endpoint's `sequence` for receivers to order by.)
            lanes: dict[tuple[object, object], list[Job]] = {}
            for job in jobs:
                lanes.setdefault((job.endpoint_id, job.consult_id), []).append(job)
            await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
            if len(jobs) < attempts.CLAIM:
                return

    async def _lane(self, jobs: list[Job]) -> None:
        for job in jobs:
            await self._attempt(job)

    async def _attempt(self, job: Job) -> None:
        assert self._client is not None
        s = self._settings
        outcome = await send(
            self._client,
            job,
            timeout=s.webhooks_timeout_seconds,
            allow_private=s.webhooks_allow_private_addresses,
        )
        await self._in_session(attempts.record, job, outcome, now=datetime.now(UTC), settings=s)

    async def _in_session(self, work: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One unit of the worker's database work, in a session of its own, never cut by a stop."""

        async def run() -> T:
            async with self._sessions() as session:
                return await work(session, *args, **kwargs)

        return await whole(run())
