"""Fan-out of the log's events to this process's subscribers, and the feed that carries each
sequenced batch to the other nodes (Redis). The feed is a shortcut: every node can read the log
from the database, and does when a batch is missing (events.log)."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import orjson
from redis.asyncio import Redis

from api.tasks import cancel

log = logging.getLogger("liaison.events")
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
        self._watchers: list[Callable[[list[dict]], None]] = []

    def watch(self, watcher: Callable[[list[dict]], None]) -> None:
        """Hear every batch this process delivers, whatever its channels (a worker woken by the log)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[list[dict]], None]) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def subscribe(self, channels: list[str]) -> Subscription:
        sub = Subscription(channels)
        for channel in channels:
            self._subs[channel].add(sub)
        return sub

    def rescope(self, sub: Subscription, channels: list[str]) -> None:
        """Move a subscription to other channels (its holder's roles changed); its queue is kept."""
        self.unsubscribe(sub)
        sub.channels = channels
        for channel in channels:
            self._subs[channel].add(sub)

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
        for watcher in self._watchers:
            watcher(events)


OnBatch = Callable[[str, list[dict] | None], None]  # (node, batch); None: batches may have been missed


class Feed:
    """No other node: nothing to tell, nothing to hear."""

    def name(self, log_id: str) -> None:
        return None

    async def start(self, on_batch: OnBatch) -> None:
        return None

    async def publish(self, node: str, batch: list[dict]) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisFeed(Feed):
    """The log's Redis channel: a node that sequenced a batch publishes it, every other node takes it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._channel: str | None = None
        self._named = asyncio.Event()
        self._task: asyncio.Task | None = None

    def name(self, log_id: str) -> None:
        """The channel is the log's own: deployments sharing one Redis never hear each other."""
        self._channel = f"liaison:events:{log_id}"
        self._named.set()

    async def start(self, on_batch: OnBatch) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(on_batch, ready), name="events-feed")
        if self._named.is_set():  # else the database is away: the log polls until it can name us
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout=5)

    async def publish(self, node: str, batch: list[dict]) -> None:
        if self._channel is not None:
            await self._redis.publish(self._channel, orjson.dumps({"node": node, "events": batch}))

    async def stop(self) -> None:
        await cancel(self._task)

    async def _listen(self, on_batch: OnBatch, ready: asyncio.Event) -> None:
        await self._named.wait()
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    ready.set()
                    on_batch("", None)  # whatever was published while we were not listening
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            heard = orjson.loads(message["data"])
                            on_batch(heard["node"], heard["events"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()  # start need not wait: the log polls until Redis is back
                log.warning(
                    "event feed lost Redis (%s); polling the log until it is back", type(exc).__name__
                )
                await asyncio.sleep(1)


def make_feed(redis: Redis | None) -> Feed:
    return RedisFeed(redis) if redis is not None else Feed()
