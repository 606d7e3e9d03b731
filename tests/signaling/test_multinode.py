"""Several `liaison serve` processes sharing rooms through Redis (scaled configuration only).

Each node is a real subprocess; peers are plain WebSockets. Presence expires after TTL seconds
without a heartbeat, so a SIGKILLed node's peers are announced gone within about TTL * 4/3.
"""

import asyncio
import concurrent.futures
import contextlib
import json
import random
import time
import uuid

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from api.redis import make_redis
from liaison.app import create_app
from signaling.core.admission import CallGrant, Verdict
from signaling.core.messages import ProtocolError
from signaling.fabric.ledger import RedisLedger
from signaling.fabric.redis_fabric import RedisFabric
from tests.conftest import World, make_settings, reset_env, seed_world
from tests.live import Node, http, put_on_call

CONSULT = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}
TTL = 1.5
MAX_PEERS = 3
QUIET = 2 * TTL  # long enough for any duplicate announcement (heartbeats run every TTL/3) to show


class Cluster:
    def __init__(self, nodes: list[Node], world, consult: dict, redis_url: str) -> None:
        self.nodes, self.w, self.consult, self.redis_url = nodes, world, consult, redis_url
        self.stack = contextlib.AsyncExitStack()

    async def token(self, who: str) -> str:
        resp = await self.w.client.post(
            f"/api/v1/consults/{self.consult['id']}/call-token", headers=await self.w.headers(who)
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["token"]

    async def connect(self, node: int, who: str):
        """A socket on node `node` that sent its join; returns (ws, first answer)."""
        ws = await self.stack.enter_async_context(
            websockets.connect(f"ws://{self.nodes[node].host}/api/v1/signaling", compression=None)
        )
        await ws.send(json.dumps({"type": "join", "token": await self.token(who)}))
        return ws, await recv(ws)

    async def join(self, node: int, who: str):
        ws, joined = await self.connect(node, who)
        assert joined["type"] == "joined", joined
        return ws, joined


async def recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def quiet(ws, seconds: float = QUIET) -> None:
    """Nothing more arrives on `ws` for `seconds`."""
    with pytest.raises(asyncio.TimeoutError):
        extra = await recv(ws, seconds)
        pytest.fail(f"unexpected message {extra}")


def _in_thread(coro):
    """Run `coro` on an event loop of its own (module-scoped set-up, outside the tests' loops)."""
    # No deadline of its own: leaving the `with` waits for the thread anyway, so a timeout here only
    # hid the real error; each node's start is bounded by Node.ready (on a machine loaded by other
    # test runs, starting two nodes has taken more than two minutes).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _settings(env: dict, ttl: float):
    return make_settings(
        env["database_url"],
        env["redis_url"],
        signaling_presence_ttl=ttl,
        signaling_max_peers=MAX_PEERS,
        escalation_worker=False,
    )


async def _seed(env: dict) -> dict:
    await reset_env(env)
    app = create_app(_settings(env, TTL))  # in-process, only to write the shared database
    async with app.router.lifespan_context(app), httpx.AsyncClient() as unused:
        w = await seed_world(app, unused)
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty="trauma-surgery",
            max_concurrent=50,
        )
    return w.users


async def _launch(env: dict, *, nodes: int = 2, ttl: float = TTL) -> list[Node]:
    started = [Node(_settings(env, ttl)) for _ in range(nodes)]
    try:
        await asyncio.gather(*(n.start() for n in started))
    except BaseException:
        for n in started:
            n.stop()
        raise
    return started


@pytest.fixture(scope="module")
def scaled(pg_url, redis_url) -> dict:
    """The scaled configuration, seeded once for the module (users, an agreement, a specialist on call)."""
    env = {"name": "scaled", "database_url": pg_url, "redis_url": redis_url}
    return env | {"users": _in_thread(_seed(env))}


@pytest.fixture(scope="module")
def pair(scaled):
    """Two nodes shared by the tests that neither kill nor stop one."""
    nodes = _in_thread(_launch(scaled))
    yield nodes
    for n in nodes:
        n.stop()


@pytest.fixture
def nodes(env, request):
    if env["name"] != "scaled":
        pytest.skip("several nodes share rooms through Redis; the embedded configuration is a single process")
    shape = getattr(request, "param", None)
    if shape is None:
        yield request.getfixturevalue("pair"), request.getfixturevalue("scaled")
        return
    scaled = request.getfixturevalue("scaled")
    own = _in_thread(_launch(scaled, **shape))
    yield own, scaled
    for n in own:
        n.stop()


@pytest.fixture
async def cluster(nodes):
    """A fresh accepted consult (so a fresh room) on the nodes, and sockets closed afterwards."""
    started, scaled = nodes
    async with http(started[0].host) as client:
        w = World(client=client, users=dict(scaled["users"]))
        consult = (
            await client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()
        accepted = await client.post(
            f"/api/v1/consults/{consult['id']}/accept", headers=await w.headers("b-specialist")
        )
        assert accepted.status_code == 200, accepted.text
        c = Cluster(started, w, consult, scaled["redis_url"])
        async with c.stack, asyncio.timeout(60):
            yield c


async def test_peers_on_two_nodes_meet_and_relay(cluster):
    a, joined_a = await cluster.join(0, "a-clinician")
    assert joined_a["peers"] == []
    b, joined_b = await cluster.join(1, "b-specialist")
    pa, pb = joined_a["peer_id"], joined_b["peer_id"]
    # the role and name the call token gave travel through the fabric as the other node sent them
    assert joined_b["peers"] == [
        {
            "peer_id": pa,
            "user_id": str(cluster.w.users["a-clinician"]),
            "role": "requester",
            "name": "a-clinician",
            "state": "connected",
        }
    ]
    assert await recv(a) == {
        "type": "peer-joined",
        "peer_id": pb,
        "user_id": str(cluster.w.users["b-specialist"]),
        "role": "assignee",
        "name": "b-specialist",
    }

    await b.send(json.dumps({"type": "offer", "to": pa, "sdp": SDP}))
    assert await recv(a) == {"type": "offer", "from": pb, "sdp": SDP}
    await a.send(json.dumps({"type": "answer", "to": pb, "sdp": SDP}))
    assert await recv(b) == {"type": "answer", "from": pa, "sdp": SDP}
    await a.send(json.dumps({"type": "candidate", "to": pb, **CANDIDATE}))
    assert await recv(b) == {"type": "candidate", "from": pa, **CANDIDATE}
    await b.send(json.dumps({"type": "candidate", "to": pa, **CANDIDATE}))
    assert await recv(a) == {"type": "candidate", "from": pb, **CANDIDATE}
    for i in range(50):  # order holds across nodes
        await b.send(json.dumps({"type": "candidate", "to": pa, **CANDIDATE, "sdpMLineIndex": i}))
    assert [(await recv(a))["sdpMLineIndex"] for _ in range(50)] == list(range(50))

    await b.send(json.dumps({"type": "leave"}))
    assert await recv(a) == {
        "type": "peer-left",
        "peer_id": pb,
        "user_id": str(cluster.w.users["b-specialist"]),
        "role": "assignee",
        "name": "b-specialist",
    }
    await quiet(a)  # announced once, and presence heartbeats raise no ghost announcements


async def test_room_limit_counts_peers_on_both_nodes(cluster):
    await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    _, third = await cluster.join(0, "a-clinician")  # three: the limit
    assert (await recv(b))["peer_id"] == third["peer_id"]  # node 0 has published it (joins race otherwise)
    _, refused = await cluster.connect(1, "b-specialist")
    assert refused["type"] == "error" and refused["code"] == "room_full", refused  # 1 here + 2 on node 0
    _, refused = await cluster.connect(0, "a-clinician")
    assert refused["type"] == "error" and refused["code"] == "room_full", refused  # 2 here + 1 on node 1
    await b.send(json.dumps({"type": "leave"}))
    await asyncio.sleep(0.2)
    _, joined = await cluster.connect(1, "b-specialist")
    assert joined["type"] == "joined" and len(joined["peers"]) == 2, joined


@pytest.mark.parametrize("nodes", [{"nodes": 3}], indirect=True)
async def test_dead_node_peers_leave_once_presence_expires(cluster):
    a, joined_a = await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    c, joined_c = await cluster.join(2, "a-clinician")
    pc = joined_c["peer_id"]
    assert {p["peer_id"] for p in joined_c["peers"]} == {joined_a["peer_id"], joined_b["peer_id"]}
    assert (await recv(a))["peer_id"] == joined_b["peer_id"]
    assert (await recv(a))["peer_id"] == pc
    assert (await recv(b))["peer_id"] == pc
    await quiet(a)  # heartbeats keep live peers present well past the TTL

    cluster.nodes[2].kill()
    started = time.monotonic()
    left_a, left_b = await asyncio.gather(recv(a, 4 * TTL), recv(b, 4 * TTL))
    elapsed = time.monotonic() - started
    gone = {
        "type": "peer-left",
        "peer_id": pc,
        "user_id": str(cluster.w.users["a-clinician"]),
        "role": "requester",
        "name": "a-clinician",
    }
    assert (left_a, left_b) == (gone, gone), (left_a, left_b, joined_a["peer_id"], joined_b["peer_id"], pc)
    assert elapsed < TTL * 4 / 3 + 1.5, elapsed  # TTL, a heartbeat, and slack for a loaded machine
    await a.send(json.dumps({"type": "offer", "to": pc, "sdp": SDP}))
    assert (await recv(a))["code"] == "unknown_peer"
    redis = Redis.from_url(cluster.redis_url)
    try:  # no ghost left behind in Redis either
        assert await redis.hget(f"liaison:sig:room:{joined_a['room']}", pc) is None
    finally:
        await redis.aclose()
    await asyncio.gather(quiet(a), quiet(b))  # both survivors swept; each peer heard it once
    await b.send(json.dumps({"type": "offer", "to": joined_a["peer_id"], "sdp": SDP}))
    assert (await recv(a))["from"] == joined_b["peer_id"]  # the survivors still relay


async def test_forward_to_a_peer_no_longer_anywhere(cluster):
    a, joined_a = await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    pb = joined_b["peer_id"]
    assert (await recv(a))["type"] == "peer-joined"
    await b.send(json.dumps({"type": "leave"}))
    assert (await recv(a))["type"] == "peer-left"
    await a.send(json.dumps({"type": "offer", "to": pb, "sdp": SDP}))
    assert (await recv(a))["code"] == "unknown_peer"
    await a.send(json.dumps({"type": "candidate", "to": "0123456789abcdef", **CANDIDATE}))
    assert (await recv(a))["code"] == "unknown_peer"


@pytest.mark.parametrize("nodes", [{"ttl": 60.0}], indirect=True)
async def test_stopped_node_announces_its_peers_at_once(cluster):
    a, _ = await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    assert (await recv(a))["type"] == "peer-joined"
    stopping = asyncio.create_task(asyncio.to_thread(cluster.nodes[1].stop))  # SIGTERM: a graceful shutdown
    left = await recv(a, 10)  # long before the 60 s presence would expire
    assert left["type"] == "peer-left" and left["peer_id"] == joined_b["peer_id"]
    await stopping
    await quiet(a, 1.0)


# The fabric itself, two instances in this process on the real Redis (what nodes do, minus sockets).


class Recorder:
    """A node's delivery callback: what each local peer would have been sent."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict]] = {}

    async def __call__(self, room: str, to: str, message: dict) -> bool:
        self.sent.setdefault(to, []).append(message)
        return True


@pytest.fixture
async def fabrics(env, request):
    if env["name"] != "scaled":
        pytest.skip("the Redis fabric needs Redis")
    redis = make_redis(env["redis_url"])  # as the app makes it
    ttl, heartbeat = getattr(request, "param", (0.6, None))
    made = [
        (
            RedisFabric(redis, ledger=RedisLedger(redis, leeway=0), presence_ttl=ttl, heartbeat=heartbeat),
            Recorder(),
        )
        for _ in range(2)
    ]
    for fabric, recorder in made:
        await fabric.start(recorder)
    try:
        async with asyncio.timeout(30):
            yield made
    finally:
        for fabric, _ in made:
            await fabric.stop()
        await redis.aclose()


def _room() -> str:
    return f"test-{uuid.uuid4().hex}"


def _grant(room: str, user: str) -> CallGrant:
    iat = int(time.time()) + 1  # after the ledger's memory began
    return CallGrant(user, "org", room, None, uuid.uuid4().hex, iat, iat + 300)


@pytest.mark.parametrize(
    "fabrics", [(30.0, 10.0)], indirect=True
)  # no heartbeat during the test: joins alone
@pytest.mark.parametrize("entering", ["at admission", "after joined"])
async def test_concurrent_joins_on_two_nodes_learn_of_each_other_once(fabrics, entering):
    """A peer enters the room in its admission's script (a fresh token), or in a JOIN of its own
    after the database said yes; either way each of two racing peers hears of the other once."""
    (f1, r1), (f2, r2) = fabrics
    rooms = [_room() for _ in range(60)]
    known = {}
    jitter = random.Random(7)

    async def join(fabric, room, peer_id, before, between):
        await asyncio.sleep(before)
        peer = {"peer_id": peer_id, "user_id": "u-" + peer_id}
        admission = await fabric.admit(
            _grant(room, peer["user_id"]), peer, max_peers=6, enter=entering == "at admission"
        )
        assert (admission.entered is not None) == (entering == "at admission")
        known[peer_id] = [p["peer_id"] for p in admission.remote]
        await asyncio.sleep(between)  # the server answers `joined` between the two
        await fabric.joined(room, peer, known=admission.remote, entered=admission.entered)

    async def both(i, room):
        a, b = (f1, room, f"{room}-a"), (f2, room, f"{room}-b")
        if i % 3 == 0:  # one after the other: b is told of a in `joined`
            await join(*a, 0, 0)
            await join(*b, 0, 0)
        elif i % 3 == 1:  # at once
            await asyncio.gather(join(*a, 0, 0), join(*b, 0, 0))
        else:  # interleaved every which way
            await asyncio.gather(
                join(*a, jitter.uniform(0, 0.03), jitter.uniform(0, 0.005)),
                join(*b, jitter.uniform(0, 0.03), jitter.uniform(0, 0.005)),
            )

    await asyncio.gather(*(both(i, room) for i, room in enumerate(rooms)))
    await asyncio.sleep(0.5)
    told_by_join = 0
    for room in rooms:
        for me, other, recorder in ((f"{room}-a", f"{room}-b", r1), (f"{room}-b", f"{room}-a", r2)):
            heard = [m["peer_id"] for m in recorder.sent.get(me, []) if m["type"] == "peer-joined"]
            assert heard.count(other) + known[me].count(other) == 1, (me, known[me], recorder.sent.get(me))
            assert not [m for m in recorder.sent.get(me, []) if m["type"] == "peer-left"]
            told_by_join += known[me].count(other)
    if entering == "at admission":  # atomic: in each room the second to enter was told of the first
        assert told_by_join == len(rooms)
    else:
        assert len(rooms) // 3 <= told_by_join < len(rooms)  # both orders happened


async def test_the_last_places_of_a_room_go_to_exactly_as_many_joins(fabrics):
    """Joins race on two nodes for a room's last places: the room's limit holds across the nodes,
    and a token refused for want of room is not spent."""
    (f1, r1), (f2, r2) = fabrics
    room = _room()
    await f1.joined(room, {"peer_id": "first", "user_id": "u0"}, known=[])
    grants = [
        (f1 if i % 2 else f2, _grant(room, f"u{i}"), {"peer_id": f"p{i}", "user_id": f"u{i}"})
        for i in range(12)
    ]

    async def attempt(fabric, grant, peer):
        try:
            admission = await fabric.admit(grant, peer, max_peers=MAX_PEERS, enter=True)
        except ProtocolError as refused:
            assert refused.code == "room_full", refused.code
            return None
        await fabric.joined(room, peer, known=admission.remote, entered=admission.entered)
        return peer

    seated = [p for p in await asyncio.gather(*(attempt(*g) for g in grants)) if p is not None]
    assert len(seated) == MAX_PEERS - 1
    await f1.left(room, {"peer_id": "first", "user_id": "u0"})
    fabric, grant, peer = next(g for g in grants if g[2] not in seated)
    admission = await fabric.admit(
        grant, peer, max_peers=MAX_PEERS, enter=True
    )  # the same token, now there is room
    assert admission.verdict is Verdict.FRESH and admission.entered is not None
    elsewhere = [g[2]["peer_id"] for g in grants if g[2] in seated and g[0] is not fabric]
    assert sorted(p["peer_id"] for p in admission.remote) == sorted(elsewhere)


async def test_a_join_nobody_elsewhere_would_hear_is_not_published(fabrics, env):
    """The first peer of a room enters without an event (no other node has peers there to act on it);
    the second, on another node, is announced, and the first hears of it."""
    (f1, r1), (f2, r2) = fabrics
    room, redis = _room(), Redis.from_url(env["redis_url"])
    try:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(f1._events)
            await pubsub.get_message(timeout=1)  # the subscription's confirmation
            first = {"peer_id": "a", "user_id": "ua"}
            admission = await f1.admit(_grant(room, "ua"), first, max_peers=6, enter=True)
            await f1.joined(room, first, known=admission.remote, entered=admission.entered)
            assert await pubsub.get_message(timeout=0.3) is None
            second = {"peer_id": "b", "user_id": "ub"}
            admission = await f2.admit(_grant(room, "ub"), second, max_peers=6, enter=True)
            await f2.joined(room, second, known=admission.remote, entered=admission.entered)
            event = json.loads((await pubsub.get_message(timeout=2))["data"])
            assert (event["event"], event["peer"]["peer_id"]) == ("peer-joined", "b")
    finally:
        await redis.aclose()
    await asyncio.sleep(0.2)
    assert r1.sent == {"a": [{"type": "peer-joined", "peer_id": "b", "user_id": "ub"}]} and r2.sent == {}


async def test_a_peer_that_left_before_its_join_reached_redis_is_never_announced(fabrics, env):
    """A close order ends a peer whose Join script is still on its way (another connection): the
    leave's tombstone reaches Redis first, and the late Join must not put it in the room and
    announce it to the other nodes (a ghost peer-joined), nor may the heartbeats after it."""
    (f1, r1), (f2, r2) = fabrics
    room, b = _room(), {"peer_id": "b", "user_id": "ub"}
    await f2.joined(room, {"peer_id": "a", "user_id": "ua"}, known=await f2.remote_peers(room))
    await f1.left(room, b)  # the leave first, as Redis saw them
    redis = Redis.from_url(env["redis_url"])
    try:  # it reached Redis (left() only logs a Redis that does not answer; a loaded machine has timed out)
        assert await redis.hexists(f"liaison:sig:room:{room}", "~gone:b")
    finally:
        await redis.aclose()
    await f1.joined(room, b, known=await f1.remote_peers(room))
    await asyncio.sleep(4 * f1.interval)  # heartbeats of both nodes have run meanwhile
    assert await f2.remote_peers(room) == []
    assert r2.sent == {}, r2.sent


async def test_room_state_lost_in_redis_heals_without_announcements(fabrics, env):
    """Redis restarted without persistence, or failed over: the nodes put their peers back, and
    nobody is told that anybody left (a snapshot's absence alone is not a departure)."""
    (f1, r1), (f2, r2) = fabrics
    room = _room()
    await f1.joined(room, {"peer_id": "a", "user_id": "ua"}, known=await f1.remote_peers(room))
    await f2.joined(room, {"peer_id": "b", "user_id": "ub"}, known=await f2.remote_peers(room))
    await asyncio.sleep(0.2)
    assert r1.sent == {"a": [{"type": "peer-joined", "peer_id": "b", "user_id": "ub"}]} and r2.sent == {}
    redis = Redis.from_url(env["redis_url"])
    try:
        # The room's state is gone. (Not checked by a forward to b failing after this: a heartbeat of
        # f2 may put b back in between, as a run on a loaded machine saw; healing is the point.)
        assert await redis.delete(f"liaison:sig:room:{room}") == 1
        await asyncio.sleep(4 * f1.interval)
        assert set(await redis.hkeys(f"liaison:sig:room:{room}")) == {b"a", b"b", b"~seq"}
    finally:
        await redis.aclose()
    assert await f1.forward(room, "b", {"type": "offer", "from": "a"})
    await asyncio.sleep(0.2)
    assert r1.sent == {"a": [{"type": "peer-joined", "peer_id": "b", "user_id": "ub"}]}
    assert r2.sent == {"b": [{"type": "offer", "from": "a"}]}
    await f2.left(room, {"peer_id": "b", "user_id": "ub"})
    await asyncio.sleep(0.2)
    assert r1.sent["a"][-1] == {"type": "peer-left", "peer_id": "b", "user_id": "ub"}


async def test_a_lost_link_is_shown_on_the_other_node(cluster):
    """b's link on node 1 is cut: a, on node 0, hears `reconnecting`, then `connected` once b resumed."""
    a, _ = await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    assert (await recv(a))["type"] == "peer-joined"
    b.transport.abort()
    state = await recv(a)
    assert state.pop("role") and state.pop("name")  # described as in peer-joined (checked there)
    assert state == {
        "type": "peer-state",
        "peer_id": joined_b["peer_id"],
        "user_id": str(cluster.w.users["b-specialist"]),
        "state": "reconnecting",
    }
    b2 = await cluster.stack.enter_async_context(
        websockets.connect(f"ws://{cluster.nodes[1].host}/api/v1/signaling", compression=None)
    )
    await b2.send(json.dumps({"type": "resume", "resume": joined_b["resume"]}))
    assert (await recv(b2))["peer_id"] == joined_b["peer_id"]
    assert (await recv(a))["state"] == "connected"
    await b2.send(json.dumps({"type": "leave"}))
    assert (await recv(a))["type"] == "peer-left"
    await quiet(a, 1.0)


async def test_a_reconnecting_peer_on_another_node_is_listed_held_for_and_holds_no_place(cluster):
    """b's link on node 1 drops: newcomers on node 0 see it `reconnecting`, it does not count toward
    the limit of 3 (Redis's admission skips it), a's offer to it is held and a is told so by node 1,
    and b's resume into the room filled meanwhile is refused `room_full`."""
    a, _ = await cluster.join(0, "a-clinician")
    b, joined_b = await cluster.join(1, "b-specialist")
    pb = joined_b["peer_id"]
    assert (await recv(a))["type"] == "peer-joined"
    b.transport.abort()
    assert (await recv(a))["state"] == "reconnecting"
    await a.send(json.dumps({"type": "offer", "to": pb, "sdp": SDP}))
    assert await recv(a) == {"type": "held", "to": pb, "kind": "offer", "state": "reconnecting"}
    c, joined_c = await cluster.join(0, "a-clinician")
    assert {p["peer_id"]: p["state"] for p in joined_c["peers"]} == {
        joined_c["peers"][0]["peer_id"]: "connected",
        pb: "reconnecting",
    }
    _, joined_d = await cluster.join(0, "b-specialist")  # a, c and d: three connected, b not counted
    assert len(joined_d["peers"]) == 3
    b2 = await cluster.stack.enter_async_context(
        websockets.connect(f"ws://{cluster.nodes[1].host}/api/v1/signaling", compression=None)
    )
    await b2.send(json.dumps({"type": "resume", "resume": joined_b["resume"]}))
    refused = await recv(b2)
    assert refused["type"] == "error" and refused["code"] == "room_full", refused
    seen = [await recv(a) for _ in range(3)]  # c and d joined, then b left
    assert [m["type"] for m in seen] == ["peer-joined", "peer-joined", "peer-left"], seen
    assert seen[2]["peer_id"] == pb
