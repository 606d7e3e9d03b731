"""Who gets in, and what is asked to decide it: a settled node admits a call token on the ledger's word
alone; the database decides for a fresh node, after an end (cancel, reassign, disable) or when a
close order may have raced the join. Tokens never outlive their agreement, and an end that cannot be
marked changes nothing."""

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import event, update

from agreements.models import Agreement
from api.db import commit
from signaling.fabric.redis_fabric import RedisFabric
from tests.conftest import make_settings, reset_env, seed_world
from tests.live import free_port, http, put_on_call, serve
from tests.signaling.test_call_lifecycle import call_closed, eventually, refused_join, status_of
from tests.signaling.test_multinode import Recorder
from tests.signaling.test_protocol import Live, live, relays, settings  # noqa: F401 (live: fixture)

scaled = pytest.mark.parametrize("env", ["scaled"], indirect=True)


BACKGROUND = re.compile(
    r"\b(events|event_log|audit_events|audit_head|webhook_\w+)\b|^(BEGIN|COMMIT|ROLLBACK)|pg_advisory"
)


class Queries:
    """Counts the SQL statements the app runs while in the block, but for its background readers of the
    event log, the audit trail and the webhook deliveries, which poll on their own clock."""

    def __init__(self, app) -> None:
        self.engine, self.n, self.on = app.state.engine.sync_engine, 0, False
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement: str, *_args) -> None:
        if not BACKGROUND.search(statement):
            self.n += self.on

    def __enter__(self) -> "Queries":
        self.n, self.on = 0, True
        return self

    def __exit__(self, *_exc) -> None:
        self.on = False


@settings(escalation_worker=False)
async def test_a_settled_node_admits_without_the_database(live):
    tokens = [await live.token(who) for who in ("a-clinician", "b-specialist")]
    with Queries(live.app) as q:
        a = await live.join(token=tokens[0])
        b = await live.join(token=tokens[1])
        assert (await a.recv())["type"] == "peer-joined"
        await relays(a, b)
    assert q.n == 0
    assert await eventually(lambda: in_session(live))  # attendance is still written, after the fact


async def in_session(live) -> bool:
    return await status_of(live, live.consult) == "in_session"


async def test_a_fresh_node_asks_the_database(env):
    await reset_env(env)
    async with (
        serve(
            # The widest leeway: the token below is issued within the ledger's first minute, however
            # slowly a loaded machine seeds the world (with the default 5 s it was not, once).
            make_settings(env["database_url"], env["redis_url"], escalation_worker=False, clock_leeway=60),
            settled=False,
        ) as (app, host),
        http(host) as client,
    ):
        w = await seed_world(app, client)
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty="trauma-surgery",
        )
        async with contextlib.AsyncExitStack() as sockets:
            live = Live(app, host, w, sockets)
            live.consult = await live.new_consult()
            token = await live.token("a-clinician")  # issued within the ledger's first minute
            with Queries(app) as q:
                await live.join(token=token)
            assert q.n >= 1  # may_join


@settings(escalation_worker=False)
async def test_a_close_order_heard_sends_joins_to_the_database(live):
    """What a close order racing a join looks like from the server: the ledger saw no mark, the order came."""
    token = await live.token("a-clinician")
    await live.server.close_room(f"consult-{live.consult['id']}", "a close order")
    with Queries(live.app) as q:
        await live.join(token=token)
    assert q.n >= 1  # the database says the consult still allows calls: joined


async def test_reassigning_removes_the_previous_specialist(live):
    a, b = await live.pair()
    spare = await live.token("b-specialist")
    c, w = live.w.client, live.w
    resp = await c.post(
        f"/api/v1/consults/{live.consult['id']}/assign",
        json={"specialist_id": str(w.users["a-specialist"])},
        headers=await w.headers("a-coordinator"),
    )
    assert resp.status_code == 200, resp.text
    await call_closed(b)
    assert (await a.recv()) == {
        "type": "peer-left",
        "peer_id": b.peer_id,
        "user_id": str(w.users["b-specialist"]),
        "role": "assignee",
        "name": "b-specialist",
    }
    await refused_join(live, spare)  # a token from before the reassignment does not bring them back
    resp = await c.post(
        f"/api/v1/consults/{live.consult['id']}/call-token", headers=await w.headers("b-specialist")
    )
    assert resp.status_code in (403, 404), resp.text
    s = await live.join("a-specialist")  # the new assignee joins the same call
    assert [p["peer_id"] for p in s.joined["peers"]] == [a.peer_id]
    assert (await a.recv())["type"] == "peer-joined"
    await relays(a, s)


async def test_a_call_token_does_not_outlive_its_agreement(live):
    ends = datetime.now(UTC) + timedelta(seconds=90)
    async with live.app.state.sessionmaker() as s:
        await s.execute(update(Agreement).where(Agreement.id == live.w.agreement_id).values(valid_until=ends))
        await commit(s)
    across = await live.grant("b-specialist")  # B's specialist, under the A→B agreement
    own = await live.grant("a-clinician")  # the requesting org's own clinician: no agreement involved
    expires = {
        k: datetime.fromisoformat(g["expires_at"].replace("Z", "+00:00"))
        for k, g in (("b", across), ("a", own))
    }
    assert expires["b"] <= ends and expires["b"] - datetime.now(UTC) < timedelta(seconds=91)
    assert expires["a"] - datetime.now(UTC) > timedelta(seconds=280)


@scaled
async def test_an_end_that_cannot_be_marked_changes_nothing(live):
    a, b = await live.pair()
    ledger, working = live.app.state.ledger, live.app.state.ledger._redis
    ledger._redis = Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5
    )  # nobody listens there
    url = f"/api/v1/consults/{live.consult['id']}/cancel"
    try:
        resp = await live.w.client.post(url, headers=await live.w.headers("a-clinician"))
        assert resp.status_code == 503 and resp.json()["code"] == "unavailable", resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
    finally:
        await ledger._redis.aclose()
        ledger._redis = working
    assert await status_of(live, live.consult) == "accepted"  # not cancelled, and the call goes on
    await relays(a, b)
    resp = await live.w.client.post(url, headers=await live.w.headers("a-clinician"))
    assert resp.status_code == 200, resp.text
    await call_closed(a)


@settings(escalation_worker=False)
async def test_a_user_disabled_meanwhile_is_refused_by_the_database(live):
    token = await live.token("b-specialist")
    user = live.w.users["b-specialist"]
    resp = await live.w.client.patch(
        f"/api/v1/orgs/{live.w.orgs['B']}/users/{user}",
        json={"is_active": False},
        headers=await live.w.headers("b-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    with Queries(live.app) as q:
        await refused_join(live, token)
    assert q.n >= 1
    assert (await live.join("a-clinician")).joined["peers"] == []  # others are not held up


class Elsewhere:
    """Another node's fabric, in this process on the app's Redis, with one peer in the live consult's room."""

    def __init__(self, live) -> None:
        self.room = f"consult-{live.consult['id']}"
        self.fabric = RedisFabric(live.app.state.redis, ledger=live.app.state.ledger)
        self.recorder = Recorder()

    async def __aenter__(self) -> "Elsewhere":
        await self.fabric.start(self.recorder)
        await self.fabric.joined(self.room, {"peer_id": "elsewhere", "user_id": "u-elsewhere"}, known=[])
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.fabric.stop()

    def heard(self) -> list[tuple[str, str]]:
        return [(m["type"], m.get("peer_id")) for m in self.recorder.sent.get("elsewhere", [])]

    async def newcomer(self, live):
        """A client of the live node joins, and its admission stops at a gate once the peer has entered
        the room on Redis (this node has heard of it); returns (its socket, the gate, its peer id)."""
        gate = gate_admissions(live)
        s = await live.connect()
        await s.send(type="join", token=await live.token("a-clinician"))
        await live.wait(lambda: self.heard())
        [(kind, peer_id)] = self.heard()
        assert kind == "peer-joined"
        return s, gate, peer_id


def gate_admissions(live) -> asyncio.Event:
    """Admissions that have run their script wait for the returned event before the node goes on."""
    gate, admit = asyncio.Event(), live.server.fabric.admit

    async def held(*args, **kwargs):
        admission = await admit(*args, **kwargs)
        await gate.wait()
        return admission

    live.server.fabric.admit = held
    return gate


@scaled
async def test_what_another_node_sends_a_peer_being_admitted_follows_its_joined(live):
    """A fresh token's peer enters the room in its admission's script, so other nodes may write to it
    before this node has seated it: that is held, and delivered right after `joined`."""
    async with Elsewhere(live) as elsewhere:
        s, gate, newcomer = await elsewhere.newcomer(live)
        offer = {"type": "offer", "from": "elsewhere", "sdp": "v=0\r\n"}
        assert await elsewhere.fabric.forward(elsewhere.room, newcomer, offer)
        await live.wait(lambda: live.server.rooms.arriving.get(newcomer))
        gate.set()
        joined = await s.recv()
        assert joined["type"] == "joined" and joined["peer_id"] == newcomer
        assert joined["peers"] == [{"peer_id": "elsewhere", "user_id": "u-elsewhere", "state": "connected"}]
        assert await s.recv() == offer
        await s.send(type="answer", to="elsewhere", sdp="v=0\r\n")
        await live.wait(lambda: ("answer", None) in elsewhere.heard())


@scaled
async def test_a_peer_admitted_as_its_call_ends_is_taken_out_of_the_room_again(live):
    """The consult is cancelled while a fresh token's peer is entering the room: the node hears the
    close order, asks the database, and takes the peer out again; the other nodes see it leave."""
    async with Elsewhere(live) as elsewhere:
        s, gate, newcomer = await elsewhere.newcomer(live)
        resp = await live.w.client.post(
            f"/api/v1/consults/{live.consult['id']}/cancel", headers=await live.w.headers("a-clinician")
        )
        assert resp.status_code == 200, resp.text
        await live.wait(lambda: f"room:{elsewhere.room}" in live.server.ended)
        gate.set()
        refused = await s.recv()
        assert refused["type"] == "error" and refused["code"] == "call_closed", refused
        await live.wait(lambda: ("peer-left", newcomer) in elsewhere.heard())
        assert elsewhere.heard() == [("peer-joined", newcomer), ("peer-left", newcomer)]
        assert await live.app.state.redis.hget(f"liaison:sig:room:{elsewhere.room}", newcomer) is None
