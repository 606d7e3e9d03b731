"""Fixed-window failure counters: in Redis when configured, so every node shares them.

While Redis is not answering, each node counts in its own memory instead (with a warning in the
log and `liaison_ratelimit_fallback_total` counting the decisions taken so): a 503 would lock every
user out of signing in for the length of the outage, and letting attempts through unlimited would
open the door to guessing; a per-node limit still bounds guessing, to the limit times the number
of processes. Redis is asked again FALLBACK_SECONDS after it failed."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError, TimeoutError

from api.metrics import STORE_ERRORS

log = logging.getLogger("liaison.auth")
FALLBACKS = Counter(
    "liaison_ratelimit_fallback_total",
    "Rate-limit steps counted in this process's memory because Redis was not answering",
)
FALLBACK_SECONDS = 2.0

# Decrement only a key that still exists, so that no count outlives its window.
_FORGIVE = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"
_MEMORY = object()  # what _shared answers when the step is to be counted in memory


class FailureLimiter:
    """Counts failures per key; a key at its limit is refused until its window ends."""

    def __init__(self, *, redis: Redis | None, window: int) -> None:
        self._redis = redis
        self._window = window
        self._local: dict[str, tuple[int, float]] = {}
        self._shared_after = 0.0  # monotonic: until then, Redis failed lately and memory counts

    async def retry_after(self, key: str, limit: int) -> int | None:
        """Seconds until the key may try again, or None if it may now."""
        shared = await self._shared(
            lambda r: _queued(r.pipeline(transaction=False), ("GET", key), ("TTL", key))
        )
        if shared is not _MEMORY:
            count, ttl = shared
            return max(ttl, 1) if count is not None and int(count) >= limit else None
        count, ends = self._local.get(key, (0, 0.0))
        now = time.monotonic()
        return int(ends - now) + 1 if count >= limit and ends > now else None

    async def fail(self, key: str) -> int:
        """Count one failure (or an attempt not yet judged); the key's count in this window, this one included."""
        shared = await self._shared(
            lambda r: _queued(
                r.pipeline(transaction=True), ("INCR", key), ("EXPIRE", key, self._window, "NX")
            )
        )
        if shared is not _MEMORY:
            return int(shared[0])
        now = time.monotonic()
        count, ends = self._local.get(key, (0, 0.0))
        self._local[key] = (count + 1, ends) if ends > now else (1, now + self._window)
        if len(self._local) > 100_000:  # bound memory under a spray of usernames
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        return self._local[key][0]

    async def forgive(self, key: str) -> None:
        """Take back one counted attempt that turned out not to be a failure."""
        if await self._shared(lambda r: r.eval(_FORGIVE, 1, key)) is not _MEMORY:
            return
        count, ends = self._local.get(key, (0, 0.0))
        if count > 0 and ends > time.monotonic():
            self._local[key] = (count - 1, ends)

    async def clear(self, key: str) -> None:
        if await self._shared(lambda r: r.delete(key)) is _MEMORY:
            self._local.pop(key, None)

    async def _shared(self, step: Callable[[Redis], Awaitable[Any]]) -> Any:
        """`step`'s answer from Redis; _MEMORY without Redis, or with one that failed lately."""
        if self._redis is None:
            return _MEMORY
        if time.monotonic() >= self._shared_after:
            try:
                return await step(self._redis)
            except (ConnectionError, TimeoutError) as exc:
                log.warning(
                    "Redis is not answering (%s: %s): sign-in limits are counted per node for %.0f s",
                    type(exc).__name__,
                    exc,
                    FALLBACK_SECONDS,
                )
                self._shared_after = time.monotonic() + FALLBACK_SECONDS
                STORE_ERRORS.labels("redis").inc()
        FALLBACKS.inc()
        return _MEMORY


async def _queued(pipe: Pipeline, *commands: tuple[str | int, ...]) -> list[Any]:
    """Run `commands` in one round trip: each answer, in order."""
    # Queued by name: redis-py types each command method as returning an awaitable, which on a
    # pipeline it is not (it queues and returns the pipeline).
    for command in commands:
        pipe.execute_command(*command)
    return await pipe.execute()
