"""Escalation survives a SIGKILLed server, and two server processes run each step once."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from consults.models import EscalationStep, Offer
from events.models import Event
from tests.conftest import TEST_SECRET, make_settings
from tests.consults.conftest import CONSULT, set_windows
from tests.consults.test_escalation import add_specialists, offered_to
from tests.live import EventClient, Node, http, put_on_call


@pytest.fixture
def settings_overrides() -> dict:
    return {"escalation_worker": False}  # only the server processes under test run steps


def node_settings(env):
    return make_settings(
        env["database_url"], env["redis_url"], jwt_secret=TEST_SECRET, escalation_poll_seconds=0.05
    )


async def tiers(app, world):
    t1, t2 = await add_specialists(app, world, "A", ["a-tier1", "a-tier2"])
    await put_on_call(
        app.state.sessionmaker, org_id=world.orgs["A"], user_ids=[t1], specialty="trauma-surgery", tier=1
    )
    await put_on_call(
        app.state.sessionmaker, org_id=world.orgs["A"], user_ids=[t2], specialty="trauma-surgery", tier=2
    )
    return t1, t2


async def test_sigkill_while_escalation_pending(app, world, env):
    t1, t2 = await tiers(app, world)
    await set_windows(world, "A", 2)
    node = await Node(node_settings(env)).start()
    try:
        async with http(node.host) as c:
            resp = await c.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
        assert resp.status_code == 201, resp.text
        cid = resp.json()["id"]
        node.kill()  # no graceful shutdown: the pending step exists only as a row
        assert await offered_to(app, cid) == {t1: "pending"}
        await asyncio.sleep(2.5)  # the step falls due while no server runs
        assert (await offered_to(app, cid)).get(t2) is None
        node = await Node(node_settings(env)).start()
        back = datetime.now(UTC)
        for _ in range(100):
            if (await offered_to(app, cid)).get(t2) == "pending":
                break
            await asyncio.sleep(0.05)
        async with app.state.sessionmaker() as session:
            offer = (await session.execute(select(Offer).where(Offer.specialist_id == t2))).scalar_one()
            step = (
                await session.execute(
                    select(EscalationStep).where(
                        EscalationStep.consult_id == uuid.UUID(cid), EscalationStep.seq == 1
                    )
                )
            ).scalar_one()
            sent = (
                await session.execute(
                    select(func.count())
                    .select_from(Event)
                    .where(Event.type == "offer.created", Event.channel == f"u:{t2}")
                )
            ).scalar_one()
        assert step.status == "done" and sent == 1
        assert offer.created_at - back < timedelta(seconds=3)  # run as soon as a server is back
    finally:
        node.stop()


async def test_two_nodes_run_each_step_once_and_share_events(app, world, env):
    if env["name"] != "scaled":
        pytest.skip("two processes share PostgreSQL and Redis; SQLite is the single-process default")
    t1, t2 = await tiers(app, world)
    await set_windows(world, "A", 1)
    one, two = await Node(node_settings(env)).start(), await Node(node_settings(env)).start()
    try:
        async with EventClient.connect(two.host, await world.token("a-tier1")) as on_two, http(one.host) as c:
            headers = await world.headers("a-clinician")
            ids = [
                (await c.post("/api/v1/consults", json=CONSULT, headers=headers)).json()["id"]
                for _ in range(12)
            ]
            for cid in ids:  # created through node one, heard on node two
                await on_two.wait_for("offer.created", consult_id=cid)
        for _ in range(200):
            async with app.state.sessionmaker() as session:
                pending = (
                    await session.execute(
                        select(func.count())
                        .select_from(EscalationStep)
                        .where(EscalationStep.status == "pending", EscalationStep.seq <= 2)
                    )
                ).scalar_one()
            if pending == 0:
                break
            await asyncio.sleep(0.1)
        async with app.state.sessionmaker() as session:
            steps = (
                (await session.execute(select(EscalationStep).where(EscalationStep.seq <= 2))).scalars().all()
            )
            offers = (
                await session.execute(
                    select(Event.consult_id, Event.channel, func.count())
                    .where(Event.type == "offer.created")
                    .group_by(Event.consult_id, Event.channel)
                )
            ).all()
        assert len(steps) == 2 * len(ids) and all(s.status == "done" for s in steps)
        assert {n for *_, n in offers} == {1}  # nobody was offered the same consult twice
        assert {channel for _, channel, _ in offers} == {f"u:{t1}", f"u:{t2}"}
        assert [await offered_to(app, cid) for cid in ids] == [{t1: "expired", t2: "expired"}] * len(ids)
        print(
            "steps run per node:", {n: sum(s.done_by == n for s in steps) for n in {s.done_by for s in steps}}
        )
    finally:
        one.stop()
        two.stop()
