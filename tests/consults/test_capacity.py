"""A specialist's concurrency limit holds whatever the concurrency, and a won accept asked again answers 200."""

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from api.db import commit
from audit.models import AuditEvent
from consults.lifecycle import HELD
from consults.models import Consult, Offer, Status
from events.models import Event
from liaison.app import create_app
from tests.conftest import make_settings
from tests.consults.conftest import CONSULT
from tests.consults.test_escalation import add_specialists
from tests.live import put_on_call

ACCEPTS, ROUNDS = 10, 20
DONE = {"recommendation": "Debride, splint, transfer in 24 h.", "disposition": "transfer"}


@asynccontextmanager
async def clients(app, world, env):
    """The test's client, and on the scaled database a second app instance of its own (engine, pool,
    bus, worker) on the same PostgreSQL and Redis, as a second node would be."""
    if env["name"] != "scaled":
        yield [world.client]
        return
    other = create_app(make_settings(env["database_url"], env["redis_url"], escalation_poll_seconds=0.05))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as second:
            yield [world.client, second]


async def held_by(app, user_id: uuid.UUID) -> int:
    async with app.state.sessionmaker() as session:
        return (
            await session.execute(
                select(func.count())
                .select_from(Consult)
                .where(Consult.assigned_to == user_id, Consult.status.in_(HELD))
            )
        ).scalar_one()


async def offered(app, world, specialist: uuid.UUID, n: int) -> list[str]:
    """`n` of a-clinician's consults, each offered to the specialist alone, stored in one transaction
    (through the API they would take most of this test's time)."""
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        consults = [
            Consult(
                org_id=world.orgs["A"],
                requester_id=world.users["a-clinician"],
                **CONSULT,
                status=Status.offered,
                level=1,
                first_offered_at=now,
            )
            for _ in range(n)
        ]
        session.add_all(consults)
        await session.flush()
        session.add_all(
            [
                Offer(consult_id=c.id, specialist_id=specialist, org_id=world.orgs["A"], level=1)
                for c in consults
            ]
        )
        await commit(session)
    return [str(c.id) for c in consults]


async def test_ten_accepts_at_a_limit_of_one(app, world, env):
    """Ten offers accepted at once (spread over two nodes when scaled) by a specialist allowed one: one wins."""
    solo = (await add_specialists(app, world, "A", ["a-solo"]))[0]
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["A"],
        user_ids=[solo],
        specialty="trauma-surgery",
        max_concurrent=1,
    )
    me = await world.headers("a-solo")
    async with clients(app, world, env) as nodes:
        for round_ in range(ROUNDS):
            made = await offered(app, world, solo, ACCEPTS)
            answers = await asyncio.gather(
                *(
                    nodes[i % len(nodes)].post(f"/api/v1/consults/{cid}/accept", headers=me)
                    for i, cid in enumerate(made)
                )
            )
            codes = sorted(a.status_code for a in answers)
            assert codes == [200] + [409] * (ACCEPTS - 1), f"round {round_}: {codes}"
            assert {a.json()["code"] for a in answers if a.status_code == 409} == {"over_capacity"}
            assert await held_by(app, solo) == 1, f"round {round_}"
            won = next(a.json()["id"] for a in answers if a.status_code == 200)
            done = await world.client.post(f"/api/v1/consults/{won}/complete", json=DONE, headers=me)
            assert done.status_code == 200, done.text


async def test_winner_asking_again_gets_its_consult(app, world):
    """The retry answers what the accept answered, with no second accept recorded or announced."""
    ids = await add_specialists(app, world, "A", ["a-winner", "a-loser"])
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["A"],
        user_ids=ids,
        specialty="trauma-surgery",
        max_concurrent=1,
    )
    cid = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    url, winner = f"/api/v1/consults/{cid}/accept", await world.headers("a-winner")
    first = await world.client.post(url, headers=winner)
    assert first.status_code == 200, first.text
    before = await side_effects(app, cid)
    again = await world.client.post(url, headers=winner)  # its first answer was lost on the way back
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await side_effects(app, cid) == before  # no second accept in the log, nobody told twice
    lost = await world.client.post(url, headers=await world.headers("a-loser"))
    assert lost.status_code == 409 and lost.json()["current_status"] == "accepted", lost.text


async def test_winner_retrying_while_its_first_try_is_in_flight(app, world):
    """At a limit of 1, the retry must not be refused as over capacity by the very consult it won."""
    solo = (await add_specialists(app, world, "A", ["a-solo"]))[0]
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["A"],
        user_ids=[solo],
        specialty="trauma-surgery",
        max_concurrent=1,
    )
    me, clinician = await world.headers("a-solo"), await world.headers("a-clinician")
    for _ in range(5):
        cid = (await world.client.post("/api/v1/consults", json=CONSULT, headers=clinician)).json()["id"]
        both = await asyncio.gather(
            *(world.client.post(f"/api/v1/consults/{cid}/accept", headers=me) for _ in range(2))
        )
        assert [b.status_code for b in both] == [200, 200], [b.text for b in both]
        assert both[0].json()["assigned_to"] == both[1].json()["assigned_to"] == str(solo)
        assert (
            await world.client.post(f"/api/v1/consults/{cid}/complete", json=DONE, headers=me)
        ).status_code == 200


async def side_effects(app, cid: str) -> tuple[int, int]:
    """Accepts in the audit log, and events, about this consult."""
    async with app.state.sessionmaker() as session:
        accepts = (
            await session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.resource_id == cid, AuditEvent.action == "consult.accept")
            )
        ).scalar_one()
        events = (
            await session.execute(
                select(func.count()).select_from(Event).where(Event.consult_id == uuid.UUID(cid))
            )
        ).scalar_one()
    return accepts, events


async def test_assigned_by_hand_while_accepting(app, world):
    """Both paths lock the specialist's profile before the consult (in the other order they deadlock); the
    accept that finds the consult already assigned to its caller answers 200, as a retry would."""
    solo = (await add_specialists(app, world, "A", ["a-solo"]))[0]
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["A"],
        user_ids=[solo],
        specialty="trauma-surgery",
        max_concurrent=ROUNDS + 1,
    )
    me, clinician = await world.headers("a-solo"), await world.headers("a-clinician")
    coordinator = await world.headers("a-coordinator")
    for round_ in range(ROUNDS):
        cid = (await world.client.post("/api/v1/consults", json=CONSULT, headers=clinician)).json()["id"]
        answers = await asyncio.gather(
            world.client.post(f"/api/v1/consults/{cid}/accept", headers=me),
            world.client.post(
                f"/api/v1/consults/{cid}/assign", json={"specialist_id": str(solo)}, headers=coordinator
            ),
        )
        assert [a.status_code for a in answers] == [200, 200], f"round {round_}: {[a.text for a in answers]}"
    assert await held_by(app, solo) == ROUNDS
