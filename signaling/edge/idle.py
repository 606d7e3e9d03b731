"""Idle timeouts cheap enough for thousands of waiting connections."""

import asyncio
import time
from typing import Any


class IdleWatch:
    """Idle timeouts for all of a server's connections, from one periodic sweep. A connection awaiting
    its next message is registered with the time it began; past `seconds` the sweep cancels its task,
    and `expired` turns that cancellation into a timeout. Neither a timer nor an object per
    connection (together ~300 bytes each), nor a task per message as asyncio.wait_for would make."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.waiting: dict[asyncio.Task[Any], float] = {}
        self.fired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="signaling-idle")

    def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()

    def begin(self, task: asyncio.Task[Any]) -> None:
        self.waiting[task] = time.monotonic()

    def end(self, task: asyncio.Task[Any]) -> None:
        self.waiting.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Was this task's cancellation the sweep's? If so it is taken back, and the await timed out."""
        if task not in self.fired:
            return False
        self.fired.discard(task)
        return task.uncancel() == 0

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.seconds / 4))
            now = time.monotonic()
            for task, since in list(self.waiting.items()):
                if now - since >= self.seconds and task not in self.fired:
                    self.fired.add(task)
                    task.cancel()
