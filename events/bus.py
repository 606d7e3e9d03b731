"""Fan-out of the log's events to this process's subscribers, and the wake-up that tells the other
nodes there is more to read. Redis carries no event: it only shortens the wait (events.log)."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger("liaison.events")
WAKE_CHANNEL = "liaison:events:wake"
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
    """This process's subscribers, by channel."""

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

    def deliver(self, events: list[dict]) -> None:
        for event in events:
            for sub in self._subs.get(event["channel"], ()):
                sub.offer(event)


class Wake:
    """No other node: nothing to wake."""

    async def start(self, on_wake: Callable[[], None]) -> None:
        return None

    async def ring(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisWake(Wake):
    """A Redis channel on which a node that sequenced events rings every node to read them."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._task: asyncio.Task | None = None

    async def start(self, on_wake: Callable[[], None]) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(on_wake, ready), name="events-wake-listener")
        with contextlib.suppress(TimeoutError):  # Redis may be down at start: the log polls meanwhile
            await asyncio.wait_for(ready.wait(), timeout=5)

    async def ring(self) -> None:
        await self._redis.publish(WAKE_CHANNEL, b"1")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _listen(self, on_wake: Callable[[], None], ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(WAKE_CHANNEL)
                    ready.set()
                    on_wake()  # whatever was rung while we were away
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            on_wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()  # start need not wait: the log polls until Redis is back
                log.warning("event wake-up lost Redis (%s); polling the log until it is back", type(exc).__name__)
                await asyncio.sleep(1)


def make_wake(redis: Redis | None) -> Wake:
    return RedisWake(redis) if redis is not None else Wake()
