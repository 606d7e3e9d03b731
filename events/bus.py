"""Fan-out of stored events to connected clients: in-process, or across nodes through Redis."""

import asyncio
import contextlib
import json
import logging
from collections import defaultdict

from redis.asyncio import Redis

log = logging.getLogger("liaison.events")
CHANNEL = "liaison:events"
QUEUE_BOUND = 1000


class Subscription:
    """One connected client's queue; past its bound it is marked lagging and replays from the store."""

    def __init__(self, channels: list[str]) -> None:
        self.channels = channels
        self.queue: asyncio.Queue[dict] = asyncio.Queue(QUEUE_BOUND)
        self.lagging = False

    def offer(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagging = True


class LocalBus:
    """Delivers to this process's subscribers."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, channels: list[str]) -> Subscription:
        sub = Subscription(channels)
        for channel in channels:
            self._subs[channel].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for channel in sub.channels:
            subs = self._subs.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[channel]

    async def publish(self, events: list[dict]) -> None:
        self.deliver(events)

    def deliver(self, events: list[dict]) -> None:
        for event in events:
            for sub in self._subs.get(event["channel"], ()):
                sub.offer(event)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus(LocalBus):
    """Publishes to one Redis channel; every node delivers to its own subscribers."""

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self._redis = redis
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def publish(self, events: list[dict]) -> None:
        await self._redis.publish(CHANNEL, json.dumps(events, separators=(",", ":")))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="events-redis-listener")
        await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.deliver(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event listener lost Redis; retrying")
                await asyncio.sleep(1)


def make_bus(redis: Redis | None) -> LocalBus:
    return RedisBus(redis) if redis is not None else LocalBus()
