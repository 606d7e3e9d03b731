"""Stopping background work: a cancellation never cuts a transaction's end half-way."""

import asyncio
import contextlib
import logging

from sqlalchemy import text

from api.db import make_engine, make_sessionmaker
from api.tasks import cancel, whole, woken


async def test_whole_finishes_the_work_then_lets_the_cancellation_through():
    finished = []

    async def work():
        await asyncio.sleep(0.2)
        finished.append(True)
        return 1

    async def caller():
        return await whole(work())

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()
    assert finished == [True]  # not cut at 0.05 s


async def test_a_stop_that_arrives_as_the_worker_is_woken_still_stops_it():
    """The worker loop's wait: cancelled just as its event is set, the loop ends (asyncio.wait_for
    on Python 3.11 returns the event's result instead, and the loop runs on after its app)."""
    wake = asyncio.Event()

    async def loop():
        while True:
            await woken(wake, 10)
            wake.clear()

    for _ in range(20):
        task = asyncio.create_task(loop())
        await asyncio.sleep(0)
        wake.set()
        await asyncio.sleep(0)  # the event's waiter is done: the stop and the wake-up cross
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1)
        assert task in done and task.cancelled(), "the loop swallowed its cancellation"


async def test_cancel_still_gives_up_on_work_that_never_ends(caplog):
    async def stuck():
        await whole(asyncio.Event().wait())

    task = asyncio.create_task(stuck(), name="stuck-task")
    await asyncio.sleep(0)
    await cancel(task, wait=0.2)
    assert "stuck-task did not stop" in caplog.text
    task.cancel()  # the second cancellation ends whole()'s wait
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _cancelled_at_every_point(work, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        for step in range(80):  # 0 to 8 ms in: connecting, reading, rolling back, idle
            task = asyncio.create_task(work())
            await asyncio.sleep(step / 10_000)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_unit_of_work_in_whole_is_never_cut_by_a_cancellation(env, caplog):
    """A background task's database work in whole(), cancelled at every point (as a worker is at
    shutdown): each unit that began ends, nothing is logged, every connection is back in the pool."""
    engine = make_engine(env["database_url"])
    sessions = make_sessionmaker(engine)
    began, ended = [], []

    async def unit():
        began.append(1)
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            await session.rollback()
        ended.append(1)

    async def worker():
        await whole(unit())
        await asyncio.sleep(3600)

    try:
        await _cancelled_at_every_point(worker, caplog)
        assert len(ended) == len(began) > 60
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
