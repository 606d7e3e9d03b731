"""Fixed-window failure counters: in Redis when configured, so every node shares them."""

import time

from redis.asyncio import Redis

# Decrement only a key that still exists, so that no count outlives its window.
_FORGIVE = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


class FailureLimiter:
    """Counts failures per key; a key at its limit is refused until its window ends."""

    def __init__(self, *, redis: Redis | None, window: int) -> None:
        self._redis = redis
        self._window = window
        self._local: dict[str, tuple[int, float]] = {}

    async def retry_after(self, key: str, limit: int) -> int | None:
        """Seconds until the key may try again, or None if it may now."""
        if self._redis is not None:
            count, ttl = await self._redis.pipeline(transaction=False).get(key).ttl(key).execute()
            return max(ttl, 1) if count is not None and int(count) >= limit else None
        count, ends = self._local.get(key, (0, 0.0))
        now = time.monotonic()
        return int(ends - now) + 1 if count >= limit and ends > now else None

    async def fail(self, key: str) -> int:
        """Count one failure (or an attempt not yet judged); the key's count in this window, this one included."""
        if self._redis is not None:
            count, _ = await self._redis.pipeline(transaction=True).incr(key).expire(key, self._window, nx=True).execute()
            return int(count)
        now = time.monotonic()
        count, ends = self._local.get(key, (0, 0.0))
        self._local[key] = (count + 1, ends) if ends > now else (1, now + self._window)
        if len(self._local) > 100_000:  # bound memory under a spray of usernames
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        return self._local[key][0]

    async def forgive(self, key: str) -> None:
        """Take back one counted attempt that turned out not to be a failure."""
        if self._redis is not None:
            await self._redis.eval(_FORGIVE, 1, key)
            return
        count, ends = self._local.get(key, (0, 0.0))
        if count > 0 and ends > time.monotonic():
            self._local[key] = (count - 1, ends)

    async def clear(self, key: str) -> None:
        if self._redis is not None:
            await self._redis.delete(key)
        else:
            self._local.pop(key, None)
