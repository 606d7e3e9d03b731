"""Database faults against real `liaison serve` nodes on a scratch PostgreSQL database: backends
terminated mid-request, a database that is not there, a pool with no connection free. The answer is
503 problem+json with Retry-After, never a 500; nothing is half-written; the pool recovers by
itself; a request whose client left while it waited for a connection does nothing."""

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager, suppress

import asyncpg
import httpx
import pytest
import websockets
from sqlalchemy import func, select

from auth.context import build_auth_context
from auth.service import mint_access
from consults.models import Consult, Offer
from liaison.demo import verify_audit
from signaling.calls import tokens
from tests.conftest import PG_ADMIN_URL, REDIS_URL, make_settings
from tests.consults.conftest import CONSULT
from tests.faults import assert_clean_log, assert_unavailable, node_for, seeded, sign_in
from tests.live import free_port, http

CONSULTS = "/api/v1/consults"
TRIES = 100  # a request refused with 503 is retried at most this often, 50 ms apart


async def terminate_backends(db: str, stop: asyncio.Event, *, every: float, rounds: int) -> int:
    """Terminate every backend of `db` (only) every `every` s, `rounds` times or until `stop`; how many."""
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""), timeout=5)
    killed = 0
    try:
        for _ in range(rounds):
            if stop.is_set():
                break
            killed += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                db,
            )
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        await conn.close()
    return killed


class Outcomes:
    """Every answer the burst got, by request kind."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def note(self, kind: str, resp: httpx.Response) -> httpx.Response:
        self.seen.append((kind, resp.status_code))
        if resp.status_code == 503:
            assert_unavailable(resp)
        return resp

    def count(self, status: int) -> int:
        return sum(s == status for _, s in self.seen)


async def create_until_stored(c: httpx.AsyncClient, headers: dict, key: str, out: Outcomes) -> str:
    """POST the consult with its Idempotency-Key until it is answered 201; its id."""
    for _ in range(TRIES):
        resp = out.note(
            "create", await c.post(CONSULTS, json=CONSULT, headers=headers | {"Idempotency-Key": key})
        )
        if resp.status_code != 503:
            assert resp.status_code == 201, resp.text
            return resp.json()["id"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key}: still 503 after {TRIES} tries")


async def accept_until_done(c: httpx.AsyncClient, headers: dict, cid: str, out: Outcomes) -> None:
    """Accept until answered 200, or 409 `accepted` after a 503 (whose COMMIT went through, its answer lost)."""
    refused = False
    for _ in range(TRIES):
        resp = out.note("accept", await c.post(f"{CONSULTS}/{cid}/accept", headers=headers))
        if resp.status_code == 200:
            return
        if resp.status_code == 409 and refused and resp.json().get("current_status") == "accepted":
            return
        assert resp.status_code == 503, resp.text
        refused = True
        await asyncio.sleep(0.05)
    raise AssertionError(f"{cid}: still 503 after {TRIES} tries")


async def test_backends_terminated_during_a_burst(scratch, tmp_path):
    db, url = scratch
    async with seeded(url) as (app, world):
        node = await node_for(url, tmp_path, REDIS_URL).start()
        try:
            clinician, specialist = await sign_in(node, "a-clinician", "b-specialist")
            keys = [f"burst-{i}" for i in range(36)]
            out, created, stop = Outcomes(), {}, asyncio.Event()

            async def pipeline(c: httpx.AsyncClient, mine: list[str]) -> None:
                for key in mine:
                    created[key] = await create_until_stored(c, clinician, key, out)
                    await accept_until_done(c, specialist, created[key], out)

            killer = asyncio.create_task(terminate_backends(db, stop, every=0.15, rounds=30))
            started = time.monotonic()
            async with http(node.host) as c:
                try:
                    await asyncio.wait_for(asyncio.gather(*[pipeline(c, keys[i::6]) for i in range(6)]), 60)
                finally:
                    stop.set()
                    killed = await killer
                burst = time.monotonic() - started
                # The pool recovers by itself: the next requests succeed at the first try.
                after = await c.post(CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "after"})
                ready = await c.get("/readyz")
            print(
                f"burst {burst:.1f} s, {killed} backends terminated, answers:",
                {s: out.count(s) for s in sorted({s for _, s in out.seen})},
            )
            assert after.status_code == 201, after.text
            assert ready.status_code == 200, ready.text
            assert {s for _, s in out.seen} <= {200, 201, 409, 503}
            assert out.count(503) > 0, "no request met a terminated backend: the test proved nothing"
        finally:
            node.stop()
        assert_clean_log(node)
        async with app.state.sessionmaker() as session:
            rows = (
                (await session.execute(select(Consult).where(Consult.idempotency_key.in_(keys))))
                .scalars()
                .all()
            )
            accepted = (
                await session.execute(
                    select(Offer.consult_id, func.count())
                    .where(Offer.status == "accepted")
                    .group_by(Offer.consult_id)
                )
            ).all()
        assert sorted(r.idempotency_key for r in rows) == sorted(keys)  # one consult per key, none doubled
        assert {str(r.id) for r in rows} == set(created.values())  # every 201 is stored
        assert {r.status for r in rows} == {"accepted"} and {r.assigned_to for r in rows} == {
            world.users["b-specialist"]
        }
        assert {str(cid) for cid, n in accepted if n == 1} >= set(created.values())
        report = await verify_audit(make_settings(url, None))
        assert report.ok, report  # no transaction was half-applied to the chain


async def test_connections_the_server_closed_while_idle_are_replaced_before_use(scratch, tmp_path):
    """Every pooled connection's backend terminated while the node is quiet: the next requests
    (several at once, so that several pooled connections are taken) all succeed at the first try."""
    db, url = scratch
    async with seeded(url) as (_app, _world):
        node = await node_for(url, tmp_path, REDIS_URL).start()
        try:
            clinician, _ = await sign_in(node, "a-clinician", "b-specialist")
            async with http(node.host) as c:

                async def burst() -> list[int]:
                    answers = await asyncio.gather(*(c.get(CONSULTS, headers=clinician) for _ in range(8)))
                    return [r.status_code for r in answers]

                assert await burst() == [200] * 8  # the pool now holds several connections
                killed = await terminate_backends(db, asyncio.Event(), every=0, rounds=1)
                assert killed >= 2, killed
                await asyncio.sleep(0.2)  # the node's loop reads the servers' goodbyes
                assert await burst() == [200] * 8
        finally:
            node.stop()
        assert_clean_log(node)


async def test_an_unreachable_database_is_a_quick_503(tmp_path):
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    settings = make_settings(dead, None, clock_leeway=60)
    node = await node_for(dead, tmp_path, clock_leeway=60).start()
    try:
        ctx = build_auth_context(settings, None)
        user, org = uuid.uuid4(), uuid.uuid4()
        access, _ = mint_access(ctx, sub=str(user), org_id=org, extra={"sid": str(uuid.uuid4())})
        async with http(node.host) as c:
            started = time.monotonic()
            login = await c.post("/api/v1/auth/login", json={"username": "a-clinician", "password": "x" * 12})
            create = await c.post(CONSULTS, json=CONSULT, headers={"Authorization": f"Bearer {access}"})
            elapsed = time.monotonic() - started
            ready = await c.get("/readyz")
        assert_unavailable(login)
        assert_unavailable(create)
        assert elapsed < 3, elapsed
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert ready.json()["checks"]["database"].startswith("error")
        # The sockets say so and close with 1013 (try again later) instead of crashing.
        async with websockets.connect(f"ws://{node.host}/api/v1/events") as ws:
            await ws.send(json.dumps({"type": "auth", "token": access}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "unavailable"
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1013
        call, _ = tokens.issue(ctx, user_id=user, org_id=org, room="r-1", consult_id=uuid.uuid4())
        async with websockets.connect(f"ws://{node.host}/api/v1/signaling") as ws:
            # A node that started moments ago (with a minute's leeway) asks the database about every join.
            await ws.send(json.dumps({"type": "join", "token": call}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "unavailable"
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1013
    finally:
        node.stop()
    assert_clean_log(node)


@asynccontextmanager
async def consults_locked(url: str):
    """Hold a lock on the consults table that lets reads through but makes every consult insert wait."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE consults IN SHARE ROW EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await conn.close()


async def test_an_exhausted_pool_answers_503_within_its_timeout(scratch, tmp_path):
    _, url = scratch
    async with seeded(url):
        node = await node_for(url, tmp_path, db_pool_size=1, db_max_overflow=0, db_pool_timeout=1.0).start()
        try:
            (clinician,) = await sign_in(node, "a-clinician")
            async with http(node.host) as c:
                async with consults_locked(url):
                    held = asyncio.create_task(
                        c.post(CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "held"})
                    )
                    await asyncio.sleep(0.3)  # it holds the node's one connection, waiting for the lock
                    started = time.monotonic()
                    waiting = await c.post(
                        CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "waiting"}
                    )
                    elapsed = time.monotonic() - started
                    ready = await c.get("/readyz")
                assert (await held).status_code == 201
                again = await c.post(
                    CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "waiting"}
                )
            assert_unavailable(waiting)
            assert 0.9 < elapsed < 2.5, elapsed
            assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
            assert (
                again.status_code == 201 and again.headers.get("Idempotent-Replayed") is None
            )  # not stored before
        finally:
            node.stop()
        assert_clean_log(node)


async def test_a_request_whose_client_left_while_it_waited_does_nothing(scratch, tmp_path):
    _, url = scratch
    async with seeded(url) as (app, _):
        node = await node_for(url, tmp_path, db_pool_size=1, db_max_overflow=0, db_pool_timeout=10).start()
        try:
            (clinician,) = await sign_in(node, "a-clinician")
            async with http(node.host) as c:
                async with consults_locked(url):
                    held = asyncio.create_task(
                        c.post(CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "held"})
                    )
                    await asyncio.sleep(0.3)
                    async with httpx.AsyncClient(base_url=f"http://{node.host}", timeout=0.5) as impatient:
                        with pytest.raises(httpx.ReadTimeout):  # it gives up and closes its connection
                            await impatient.post(
                                CONSULTS, json=CONSULT, headers=clinician | {"Idempotency-Key": "gone"}
                            )
                assert (await held).status_code == 201
                for _ in range(50):  # the node takes the abandoned request up once the connection is free
                    if 'status="499"' in (await c.get("/metrics")).text:
                        break
                    await asyncio.sleep(0.1)
                metrics = (await c.get("/metrics")).text
        finally:
            node.stop()
        assert 'route="/api/v1/consults",status="499"' in metrics
        async with app.state.sessionmaker() as session:
            keys = (await session.execute(select(Consult.idempotency_key))).scalars().all()
        assert keys == ["held"]
        assert_clean_log(node)
