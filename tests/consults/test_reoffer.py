"""A waiting (unassigned) consult is offered within seconds to a specialist who comes on call, not at the
next minute's recheck: available again, a shift created now, a shift starting later, a place freed."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from consults.models import EscalationStep, Offer
from tests.consults.conftest import CONSULT
from tests.consults.test_capacity import DONE
from tests.consults.test_escalation import add_specialists
from tests.live import put_on_call

PROMPT = 5.0  # seconds; the safety-net recheck alone would take 60


async def waiting(world) -> str:
    """An emergent consult that nobody on call can take: it waits in the coordinators' queue."""
    resp = await world.client.post(
        "/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 201 and resp.json()["status"] == "unassigned", resp.text
    return resp.json()["id"]


async def offered_within(world, name: str, cids: list[str], seconds: float = PROMPT) -> float:
    """Poll the specialist's offers until each consult is among them; the seconds that took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        resp = await world.client.get("/api/v1/offers", headers=await world.headers(name))
        if set(cids) <= {o["consult_id"] for o in resp.json()["items"]}:
            return loop.time() - start
        assert loop.time() - start < seconds, (
            f"{name} not offered {cids} within {seconds}s: {resp.json()['items']}"
        )
        await asyncio.sleep(0.05)


async def on_shift(app, world, name: str, **profile) -> uuid.UUID:
    """A new org A specialist with a profile and a trauma-surgery shift covering now."""
    user = (await add_specialists(app, world, "A", [name]))[0]
    await put_on_call(
        app.state.sessionmaker, org_id=world.orgs["A"], user_ids=[user], specialty="trauma-surgery", **profile
    )
    return user


async def roster(world) -> str:
    resp = await world.client.post(
        "/api/v1/rosters",
        json={"specialty": "trauma-surgery", "name": "late"},
        headers=await world.headers("a-coordinator"),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def test_becoming_available(app, world):
    await on_shift(app, world, "a-late")
    me = await world.headers("a-late")
    assert (
        await world.client.put("/api/v1/me/availability", json={"availability": "off"}, headers=me)
    ).status_code == 200
    cid = await waiting(world)
    assert (
        await world.client.put("/api/v1/me/availability", json={"availability": "available"}, headers=me)
    ).status_code == 200
    print("offered after", await offered_within(world, "a-late", [cid]))


async def test_shift_created_now(app, world):
    user = (await add_specialists(app, world, "A", ["a-late"]))[0]
    profile = await world.client.put(
        f"/api/v1/specialists/{user}",
        json={"specialties": ["trauma-surgery"]},
        headers=await world.headers("a-late"),
    )
    assert profile.status_code == 200, profile.text
    rid, cid = await roster(world), await waiting(world)
    now = datetime.now(UTC)
    shift = {
        "specialist_id": str(user),
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": (now + timedelta(hours=4)).isoformat(),
    }
    made = await world.client.post(
        f"/api/v1/rosters/{rid}/shifts", json=shift, headers=await world.headers("a-coordinator")
    )
    assert made.status_code == 201, made.text
    print("offered after", await offered_within(world, "a-late", [cid]))


async def test_shift_starting_later(app, world):
    """Waiting before the shift is made, and waiting since: both offered when it starts, by a step stored
    for that instant (not held in memory)."""
    user = (await add_specialists(app, world, "A", ["a-late"]))[0]
    await world.client.put(
        f"/api/v1/specialists/{user}",
        json={"specialties": ["trauma-surgery"]},
        headers=await world.headers("a-late"),
    )
    rid, before = await roster(world), await waiting(world)
    starts = datetime.now(UTC) + timedelta(seconds=2)
    shift = {
        "specialist_id": str(user),
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=4)).isoformat(),
    }
    assert (
        await world.client.post(
            f"/api/v1/rosters/{rid}/shifts", json=shift, headers=await world.headers("a-coordinator")
        )
    ).status_code == 201
    since = await waiting(world)
    async with app.state.sessionmaker() as session:
        due = (
            (
                await session.execute(
                    select(EscalationStep.consult_id).where(
                        EscalationStep.status == "pending", EscalationStep.due_at == starts
                    )
                )
            )
            .scalars()
            .all()
        )
    assert sorted(due) == sorted([uuid.UUID(before), uuid.UUID(since)])
    await offered_within(world, "a-late", [before, since], seconds=PROMPT + 2)
    late = datetime.now(UTC) - starts
    async with app.state.sessionmaker() as session:
        offers = (
            (await session.execute(select(Offer.created_at).where(Offer.specialist_id == user)))
            .scalars()
            .all()
        )
    assert len(offers) == 2 and all(o >= starts for o in offers)  # not before it starts
    print("offered", late.total_seconds(), "s after the shift started")


async def test_a_place_freed_by_completing(app, world):
    await on_shift(app, world, "a-full", max_concurrent=1)
    me = await world.headers("a-full")
    first = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()
    assert (await world.client.post(f"/api/v1/consults/{first['id']}/accept", headers=me)).status_code == 200
    cid = await waiting(world)  # its one place is taken
    done = await world.client.post(f"/api/v1/consults/{first['id']}/complete", json=DONE, headers=me)
    assert done.status_code == 200, done.text
    print("offered after", await offered_within(world, "a-full", [cid]))


async def test_a_place_added_by_a_higher_limit(app, world):
    user = await on_shift(app, world, "a-full", max_concurrent=1)
    me = await world.headers("a-full")
    first = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()
    assert (await world.client.post(f"/api/v1/consults/{first['id']}/accept", headers=me)).status_code == 200
    cid = await waiting(world)
    raised = await world.client.put(
        f"/api/v1/specialists/{user}",
        json={"specialties": ["trauma-surgery"], "max_concurrent": 2},
        headers=await world.headers("a-coordinator"),
    )
    assert raised.status_code == 200, raised.text
    print("offered after", await offered_within(world, "a-full", [cid]))
