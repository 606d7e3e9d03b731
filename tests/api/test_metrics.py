"""Every domain series on /metrics moves in one flow through a real server: offers made, declined,
accepted, expired and withdrawn; escalation steps; time to accept; consults by status and urgency;
the unassigned queue; events sockets; signaling rooms, peers, relayed messages and errors; and the
store errors of nodes whose database or Redis is not answering."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from consults.worker import run_due_step
from liaison.app import create_app
from tests.conftest import make_settings
from tests.live import EventClient, free_port, live_world, put_on_call

URGENT = {
    "specialty": "trauma-surgery",
    "urgency": "urgent",
    "mode": "live",
    "question": "q",
    "patient_ref": "P-1",
}
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Moves:
    """Each series' change since the first scrape."""

    def __init__(self, before: dict, after: dict) -> None:
        self.before, self.after = before, after

    def __call__(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)


@pytest.fixture
async def node(env):
    async with live_world(env, escalation_worker=False) as (app, host, w):
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["A"],
            user_ids=[w.users["a-specialist"]],
            specialty="trauma-surgery",
        )
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty="trauma-surgery",
        )
        yield app, host, w


async def test_every_domain_series_moves(node):
    app, host, w = node
    c = w.client
    before = await scrape(c)
    # 1: offered to a-specialist (own org first), declined; then to b-specialist, who accepts.
    first = await _create(w, URGENT)
    assert (
        await c.post(f"/api/v1/consults/{first}/decline", headers=await w.headers("a-specialist"))
    ).status_code == 204
    assert (
        await c.post(f"/api/v1/consults/{first}/accept", headers=await w.headers("b-specialist"))
    ).status_code == 200
    # 2: offered to a-specialist, whose window passes (the steps run as if later), so to b-specialist;
    # then cancelled, which withdraws that offer.
    second = await _create(w, URGENT)
    later = datetime.now(UTC) + timedelta(hours=1)
    async with app.state.sessionmaker() as session:
        while await run_due_step(session, node="test", now=later):  # the first consult's steps are stale
            pass
    cancel = await c.post(
        f"/api/v1/consults/{second}/cancel",
        json={"reason": "resolved"},
        headers=await w.headers("a-clinician"),
    )
    assert cancel.status_code == 200, cancel.text
    # 3: nobody is on call for it: straight to the coordinators' queue.
    await _create(w, URGENT | {"specialty": "toxicology", "urgency": "routine"})
    async with EventClient.connect(host, await w.token("a-coordinator")):
        during_socket = await scrape(c)
        signaling = await _call(host, w, first)
    moved, after = Moves(before, signaling), await scrape(c)

    for outcome, n in (("made", 4), ("declined", 1), ("accepted", 1), ("expired", 1), ("withdrawn", 1)):
        assert moved("liaison_offers_total", outcome=outcome) == n, outcome
    assert moved("liaison_escalation_steps_total", result="advanced") == 1
    assert moved("liaison_escalation_steps_total", result="stale") >= 1
    assert moved("liaison_time_to_accept_seconds_count", urgency="urgent") == 1
    assert value(after, "liaison_consults", status="accepted", urgency="urgent") == 1
    assert value(after, "liaison_consults", status="cancelled", urgency="urgent") == 1
    assert value(after, "liaison_consults", status="unassigned", urgency="routine") == 1
    assert (
        value(after, "liaison_consults", status="completed", urgency="emergent") == 0
    )  # every pair is there
    assert value(after, "liaison_unassigned_consults") == 1
    assert (
        value(after, "liaison_unassigned_oldest_seconds") >= 0
        and (
            "liaison_unassigned_oldest_seconds",
            frozenset(),
        )
        in after
    )
    assert (
        value(during_socket, "liaison_events_sockets_open") - value(before, "liaison_events_sockets_open")
        == 1
    )
    assert moved("liaison_signaling_rooms") == 1 and moved("liaison_signaling_peers") == 2
    assert moved("liaison_signaling_messages_relayed_total", type="offer") == 1
    assert moved("liaison_signaling_messages_relayed_total", type="candidate") == 1
    assert moved("liaison_signaling_errors_total", code="unknown_peer") == 1
    await _settled(c, before)


async def _create(w, body: dict) -> str:
    resp = await w.client.post("/api/v1/consults", json=body, headers=await w.headers("a-clinician"))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _call(host: str, w, consult_id: str) -> dict:
    """Both participants join the consult's room and relay; the scrape taken while they are in it."""
    tokens = []
    for who in ("a-clinician", "b-specialist"):
        resp = await w.client.post(f"/api/v1/consults/{consult_id}/call-token", headers=await w.headers(who))
        assert resp.status_code == 200, resp.text
        tokens.append(resp.json()["token"])
    url = f"ws://{host}/api/v1/signaling"
    async with (
        websockets.connect(url, compression=None) as wa,
        websockets.connect(url, compression=None) as wb,
    ):
        await wa.send(json.dumps({"type": "join", "token": tokens[0]}))
        a = await _recv(wa, "joined")
        await wb.send(json.dumps({"type": "join", "token": tokens[1]}))
        b = await _recv(wb, "joined")
        await wb.send(json.dumps({"type": "offer", "to": a["peer_id"], "sdp": SDP}))
        await _recv(wa, "offer")
        candidate = {
            "candidate": "candidate:1 1 udp 1 127.0.0.1 5 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
        await wa.send(json.dumps({"type": "candidate", "to": b["peer_id"], **candidate}))
        await _recv(wb, "candidate")
        await wa.send(json.dumps({"type": "offer", "to": "nobody", "sdp": SDP}))
        assert (await _recv(wa, "error"))["code"] == "unknown_peer"
        return await scrape(w.client)


async def _recv(ws, kind: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind:
            return message


async def _settled(client, before: dict) -> None:
    """Once the sockets have closed, the gauges of this process come back down."""
    for _ in range(200):
        now = await scrape(client)
        gauges = ("liaison_events_sockets_open", "liaison_signaling_peers", "liaison_signaling_rooms")
        if all(value(now, g) == value(before, g) for g in gauges):
            return
        await asyncio.sleep(0.05)
    raise AssertionError({g: value(now, g) for g in gauges})


async def test_store_errors_are_counted_by_store(tmp_path, sqlite_template):
    """A node whose database is not answering (nothing listens at its address) answers 503 and counts
    a database error; one whose Redis is not answering counts a Redis error at sign-in."""
    import shutil

    dead_db = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/liaison"
    shutil.copy(sqlite_template, tmp_path / "ok.db")
    ok_db, dead_redis = f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}", f"redis://127.0.0.1:{free_port()}/0"
    before = None
    for db, redis in ((dead_db, None), (ok_db, dead_redis)):
        app = create_app(make_settings(db, redis, escalation_worker=False))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
        ):
            before = before or await scrape(c)
            resp = await c.post(
                "/api/v1/auth/login", json={"username": "nobody", "password": "wrong-password"}
            )
            assert resp.status_code in (401, 503), resp.text
            after = await scrape(c)
    moved = Moves(before, after)
    assert moved("liaison_store_errors_total", store="database") >= 1
    assert moved("liaison_store_errors_total", store="redis") >= 1
