"""Stopping background tasks without letting one of them hold a shutdown hostage."""

import asyncio
import logging
from typing import Any

log = logging.getLogger("liaison")
STOP_WAIT = 3.0


async def cancel(task: asyncio.Task[Any] | None, *, wait: float = STOP_WAIT) -> None:
    """Cancel `task` and wait for it, at most `wait` seconds: a task stuck where cancellation cannot
    reach (a driver call that does not return) is left behind, named in the log, and shutdown goes on."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=wait)
    if not done:
        log.warning(
            "background task %s did not stop within %.0fs; shutting down without it", task.get_name(), wait
        )
    elif not task.cancelled() and task.exception() is not None:
        log.warning("background task %s ended with %r", task.get_name(), task.exception())
