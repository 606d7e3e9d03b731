"""Per-connection limits of the signaling relay: a message rate, and an idle timeout cheap enough
for the relay's hot path."""

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Bucket:
    """Token bucket: `rate` messages a second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class IdleTimeout:
    """Awaits with a timeout, like asyncio.wait_for, but without its task (and loop hops) per message,
    which cost the relay 40% of its CPU; one timer, pushed back lazily, cancels an await that has
    waited `seconds`, and `receive` then raises TimeoutError."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.loop, self.task = seconds, asyncio.get_running_loop(), asyncio.current_task()
        self.since: float | None = None  # when the pending await began; None between awaits
        self.fired = False
        self.timer = self.loop.call_later(seconds, self._check)

    async def receive(self, pending: Awaitable[T]) -> T:
        self.since = self.loop.time()
        try:
            return await pending
        except asyncio.CancelledError:
            if self.fired and self.task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self.since = None

    def _check(self) -> None:
        now = self.loop.time()
        if self.since is not None and now - self.since >= self.seconds:
            self.fired = True
            self.task.cancel()
        else:
            self.timer = self.loop.call_at((now if self.since is None else self.since) + self.seconds, self._check)

    def cancel(self) -> None:
        self.timer.cancel()
