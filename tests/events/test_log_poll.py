"""A node's log polls on time however often its own commits kick it: what another node sequenced
while nothing told this one (no Redis between them) reaches it within a poll, not once it is idle."""

import asyncio

from api.db import commit, make_engine, make_sessionmaker
from events.bus import Feed, LocalBus
from events.log import EventLog
from events.service import emit
from tests.conftest import reset_env

POLL = 0.3


async def test_a_log_kicked_all_the_time_still_reads_what_another_node_sequenced(scaled):
    await reset_env(scaled)
    engine = make_engine(scaled["database_url"])
    busy, other = (EventLog(bus=LocalBus(), feed=Feed(), poll_seconds=POLL) for _ in range(2))
    heard: list[dict] = []
    busy.bus.watch(heard.extend)
    await busy.start(make_sessionmaker(engine, on_events=busy.kick))
    sessions = make_sessionmaker(engine, on_events=other.kick)
    await other.start(sessions)
    try:
        async with sessions() as session:
            await emit(session, channels=["probe"], type="probe", consult_id=None, data={})
            await commit(session)  # the other node sequences it at once; nobody tells `busy`
        for _ in range(100):  # 3 s of kicks, one every 30 ms: ten times the poll
            busy.kick()
            await asyncio.sleep(0.03)
            if heard:
                break
        assert [e["event"] for e in heard] == ["probe"], "the busy log never polled"
    finally:
        await busy.stop()
        await other.stop()
        await engine.dispose()
