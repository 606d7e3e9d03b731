"""Stopping background tasks without letting one of them hold a shutdown hostage, nor cutting one
of their transactions half-way."""

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

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


async def woken(event: asyncio.Event, within: float) -> bool:
    """Wait for `event` at most `within` seconds; whether it was set. Unlike asyncio.wait_for on
    Python 3.11, this never swallows a cancellation that arrives as the event is set: a worker's
    loop swallowing its stop outlived its app, still claiming work from the shared database."""
    try:
        async with asyncio.timeout(within):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def whole(work: Awaitable[T]) -> T:
    """Await `work` to its end even if this task is cancelled meanwhile, then let the cancellation
    through: a background task stopped at shutdown never leaves a transaction or a pooled connection
    half-returned (the pool logs that as an error, asyncpg may leak the connection)."""
    inner = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        try:
            await asyncio.wait({inner})
        except asyncio.CancelledError:  # insisted on: the work is given up too, not left unowned
            inner.cancel()
            raise
        if inner.done() and not inner.cancelled():
            inner.exception()  # seen here: the cancellation is what the caller hears
        raise
