"""Each node's delivery worker: feeds endpoints from the log, then sends what is due.

It wakes when the node's event log hands over events a webhook may be derived from (whether this
node sequenced them or heard them through Redis), and every poll_seconds regardless, so that a Redis
outage slows deliveries by at most that and loses none: the log and the deliveries are in the
database, and Redis only wakes the worker sooner. A wake-up costs one statement, and none while the
last look found no endpoint enabled: an endpoint enabled since is fed from the next poll."""

import asyncio
import logging
import time
import uuid
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
        # (monotonic) No endpoint was enabled at the last look: wake-ups till then skip the database.
        self._idle_until = 0.0
        # Endpoint → the task sending its claimed deliveries: none is claimed for it meanwhile.
        self._sending: dict[uuid.UUID, asyncio.Task] = {}
        self._in_flight = 0  # deliveries claimed and not yet recorded, at most attempts.CLAIM
        self._freed = False  # a send ended since the last step: claim again

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
        for task in list(self._sending.values()):
            await cancel(task)  # a delivery cut mid-send is due again once its lease runs out
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
        """Feed every endpoint that is behind the log, then hand what is due to the senders."""
        if not polled and time.monotonic() < self._idle_until:
            return  # no endpoint anywhere at the last look; one enabled since is fed from the next poll
        due, enabled = await self._in_session(feed.due_endpoints)
        self._idle_until = 0.0 if enabled else time.monotonic() + self._settings.webhooks_poll_seconds
        fed = 0
        for endpoint_id in due:
            fed += await self._in_session(feed.feed_one, endpoint_id)
        freed, self._freed = self._freed, False
        if not (fed or polled or freed):
            # Woken by events that fed nothing here: no endpoint wants them, or another node fed
            # them and sends them itself. Retries and a dead node's deliveries wait for the poll.
            return
        await self._send_due()

    async def _send_due(self) -> None:
        """Claim what is due for endpoints this node is not sending to, and send it in the background."""
        while (room := attempts.CLAIM - self._in_flight) > 0:
            jobs = await self._in_session(
                attempts.claim,
                now=datetime.now(UTC),
                settings=self._settings,
                limit=room,
                skip=sorted(self._sending, key=str),
            )
            by_endpoint: dict[uuid.UUID, list[Job]] = {}
            for job in jobs:
                by_endpoint.setdefault(job.endpoint_id, []).append(job)
            for endpoint_id, its in by_endpoint.items():
                self._in_flight += len(its)
                self._sending[endpoint_id] = asyncio.create_task(
                    self._endpoint(endpoint_id, its), name=f"webhook-send-{endpoint_id}"
                )
            if len(jobs) < room:
                return

    async def _endpoint(self, endpoint_id: uuid.UUID, jobs: list[Job]) -> None:
        """One endpoint's claimed deliveries. A receiver that hangs holds up only its own endpoint:
        no other endpoint's deliveries wait for it, and its own are not claimed meanwhile."""
        # One consult's deliveries go one after another, in sequence, so a healthy receiver gets
        # each consult's news in order; the rest go side by side. (A retry may be overtaken:
        # payloads carry the endpoint's `sequence` for receivers to order by.)
        lanes: dict[object, list[Job]] = {}
        for job in jobs:
            lanes.setdefault(job.consult_id, []).append(job)
        try:
            await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
        except Exception as exc:
            log_failure(log, "webhook send failed; what it had not recorded is retried", exc)
        finally:
            del self._sending[endpoint_id]
            self._in_flight -= len(jobs)
            self._freed = True  # what is due for it (or waited for room) is claimed at once
            self._wake.set()

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
