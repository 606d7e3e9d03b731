"""Redis faults against a real `liaison serve` node and a redis-server of the test's own, stopped and
started again while consults are created, accepted and messaged and users sign in: no 500 at any
point; a write either succeeds (and is stored) or is refused with 503 + Retry-After (and is not);
sign-in keeps a per-node limit; the first writes after Redis is back succeed at the first try."""

import asyncio
import json
import re
import time

import httpx
import websockets
from sqlalchemy import func, select

from consults.models import Consult, Message
from tests.conftest import PASSWORD
from tests.consults.conftest import CONSULT
from tests.faults import (
    CuttingProxy,
    PrivateRedis,
    assert_clean_log,
    assert_unavailable,
    node_for,
    seeded,
    sign_in,
)
from tests.live import http

CONSULTS = "/api/v1/consults"
LOGIN = "/api/v1/auth/login"


class Load:
    """Clinicians and a specialist at work until stopped; every answer is kept with the time it came."""

    def __init__(self, c: httpx.AsyncClient, clinician: dict, specialist: dict) -> None:
        self.c, self.clinician, self.specialist = c, clinician, specialist
        self.answers: list[tuple[float, str, int]] = []
        self.created: list[str] = []
        self.messages = 0
        self.stop = asyncio.Event()

    def note(self, kind: str, resp: httpx.Response) -> httpx.Response:
        self.answers.append((time.monotonic(), kind, resp.status_code))
        return resp

    async def work(self, name: str) -> None:
        for n in range(10_000):
            if self.stop.is_set():
                return
            resp = self.note(
                "create",
                await self.c.post(
                    CONSULTS, json=CONSULT, headers=self.clinician | {"Idempotency-Key": f"{name}-{n}"}
                ),
            )
            if resp.status_code != 201:
                continue
            cid = resp.json()["id"]
            self.created.append(cid)
            self.note("accept", await self.c.post(f"{CONSULTS}/{cid}/accept", headers=self.specialist))
            sent = self.note(
                "message",
                await self.c.post(
                    f"{CONSULTS}/{cid}/messages", json={"body": "BP 90/60"}, headers=self.specialist
                ),
            )
            self.messages += sent.status_code == 201
            self.note("read", await self.c.get(f"{CONSULTS}/{cid}", headers=self.clinician))
            self.note(
                "login", await self.c.post(LOGIN, json={"username": "b-clinician", "password": PASSWORD})
            )

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> set[int]:
        return {s for t, _, s in self.answers if since <= t < until}


async def test_redis_stopped_and_restarted_under_load(scratch, tmp_path):
    _, url = scratch
    redis = await PrivateRedis().start()
    async with seeded(url) as (app, world):
        node = await node_for(url, tmp_path, redis.url, login_max_failures=3).start()
        try:
            clinician, specialist = await sign_in(node, "a-clinician", "b-specialist")
            async with http(node.host) as c:
                to_cancel = await accepted(c, clinician, specialist)
                load = Load(c, clinician, specialist)
                workers = [asyncio.create_task(load.work(f"w{i}")) for i in range(3)]
                await asyncio.sleep(1.0)
                redis.stop()
                stopped = time.monotonic()
                await asyncio.sleep(0.5)
                await while_redis_is_down(c, node, clinician, to_cancel)
                await redis.start()
                restarted = time.monotonic()
                await first_writes_after_the_restart(c, clinician, to_cancel)
                await asyncio.sleep(1.0)
                load.stop.set()
                await asyncio.wait_for(asyncio.gather(*workers), 30)
                ready = await c.get("/readyz")
        finally:
            node.stop()
            redis.stop()
        kinds = {k for _, k, _ in load.answers}
        print(
            f"outage {restarted - stopped:.1f} s; {len(load.answers)} answers under load:",
            {k: sorted({s for _, kk, s in load.answers if kk == k}) for k in sorted(kinds)},
        )
        assert ready.status_code == 200, ready.text
        assert load.statuses() <= {200, 201}, load.answers  # nothing under load needs Redis to commit
        assert load.statuses(stopped, restarted) and load.statuses(restarted)  # the load ran through both
        assert kinds == {"create", "accept", "message", "read", "login"}
        async with app.state.sessionmaker() as session:
            stored = set(map(str, (await session.execute(select(Consult.id))).scalars()))
            messages = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
            cancelled = await session.get(Consult, to_cancel)
        assert set(load.created) <= stored and messages == load.messages
        assert cancelled.status == "cancelled"  # refused twice while Redis was down, done once it was back
    assert_clean_log(
        node, tracebacks=True
    )  # the event and fabric listeners log their lost Redis with a traceback


async def accepted(c: httpx.AsyncClient, clinician: dict, specialist: dict) -> str:
    cid = (await c.post(CONSULTS, json=CONSULT, headers=clinician)).json()["id"]
    assert (await c.post(f"{CONSULTS}/{cid}/accept", headers=specialist)).status_code == 200
    return cid


async def while_redis_is_down(c: httpx.AsyncClient, node, clinician: dict, cid: str) -> None:
    """Readiness names Redis; ending calls is refused, quickly, and changes nothing; sign-in is limited per node."""
    ready = await c.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["redis"].startswith("error")
    for _ in range(2):
        started = time.monotonic()
        refused = await c.post(f"{CONSULTS}/{cid}/cancel", headers=clinician)
        assert_unavailable(refused, "redis")
        print(f"cancel refused in {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < 1.5
    assert (await c.get(f"{CONSULTS}/{cid}", headers=clinician)).json()["status"] == "accepted"
    assert (await c.post(LOGIN, json={"username": "a-clinician", "password": PASSWORD})).status_code == 200
    wrong = [
        (await c.post(LOGIN, json={"username": "c-clinician", "password": "wrong-password"})).status_code
        for _ in range(4)
    ]
    assert wrong == [401, 401, 401, 429]  # login_max_failures=3, counted in this node's memory
    call = await c.post(f"{CONSULTS}/{cid}/call-token", headers=clinician)
    assert call.status_code == 200, call.text
    async with websockets.connect(f"ws://{node.host}/api/v1/signaling") as ws:
        await ws.send(json.dumps({"type": "join", "token": call.json()["token"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "fabric_unavailable"


async def first_writes_after_the_restart(
    c: httpx.AsyncClient, clinician: dict, cid: str, *, limits_shared: bool = False
) -> None:
    """The pooled connections to Redis are stale now: the first writes on them still succeed, at once;
    with `limits_shared`, no sign-in step fell back to the node's memory (it does for 2 s after an outage)."""
    before = await fallbacks(c)
    cancelled = await c.post(f"{CONSULTS}/{cid}/cancel", headers=clinician)  # alone: on the newest pooled one
    assert cancelled.status_code == 200, cancelled.text
    logins = [
        c.post(LOGIN, json={"username": u, "password": PASSWORD})
        for u in ("a-clinician", "a-specialist", "b-coordinator", "c-org_admin")
    ]
    wrong = c.post(LOGIN, json={"username": "b-org_admin", "password": "wrong-password"})
    answers = await asyncio.gather(c.post(CONSULTS, json=CONSULT, headers=clinician), wrong, *logins)
    assert [a.status_code for a in answers] == [201, 401, 200, 200, 200, 200], [a.text for a in answers]
    assert not limits_shared or await fallbacks(c) == before


async def fallbacks(c: httpx.AsyncClient) -> float:
    """The node's count of sign-in limit steps taken in its memory for want of Redis."""
    metrics = (await c.get("/metrics")).text
    return float(re.search(r"^liaison_ratelimit_fallback_total (\S+)$", metrics, re.M).group(1))


async def test_connections_that_died_unseen_are_retried(scratch, tmp_path):
    _, url = scratch
    redis = await PrivateRedis().start()
    proxy = await CuttingProxy(redis.port).start()
    async with seeded(url):
        node = await node_for(url, tmp_path, proxy.url).start()
        try:
            clinician, specialist = await sign_in(node, "a-clinician", "b-specialist")
            async with http(node.host) as c:
                cid = await accepted(c, clinician, specialist)
                await sign_in(
                    node, *[f"{org}-{role}" for org in "ab" for role in ("coordinator", "org_admin")]
                )
                warm = await asyncio.gather(
                    *[c.post(LOGIN, json={"username": "a-clinician", "password": PASSWORD}) for _ in range(6)]
                )  # several pooled connections to Redis
                assert {a.status_code for a in warm} == {200}
                proxy.cut()
                await first_writes_after_the_restart(c, clinician, cid, limits_shared=True)
        finally:
            node.stop()
            await proxy.stop()
            redis.stop()
    assert_clean_log(node)
