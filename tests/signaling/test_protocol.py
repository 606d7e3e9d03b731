"""The signaling protocol against a real uvicorn server on 127.0.0.1: tokens, Origins, limits, resume.

Each misbehaving client is checked for its error code and close code, and after it the well-behaved
pair of the same call must still relay (the server keeps serving)."""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import make_settings, reset_env, seed_world
from tests.live import free_port, http, put_on_call, serve

CONSULT = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CAND = "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host"

embedded = pytest.mark.parametrize("env", ["embedded"], indirect=True)
# Both listeners: the API's ASGI route (uvicorn) and the dedicated port (`websockets`).
listeners = pytest.mark.parametrize("route", ["asgi", "port"], indirect=True)


def settings(**overrides):
    return pytest.mark.parametrize("settings_overrides", [overrides], ids=["-".join(overrides) or "default"])


def sdp(n: int) -> str:
    return f"{SDP}a=seq:{n}\r\n"


class Sock:
    """One signaling connection."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.joined: dict | None = None
        self.states: list[dict] = []  # peer-state messages heard, kept apart (see recv)
        self.held: list[dict] = []  # `held` notices: what this peer sent to a reconnecting one

    @property
    def peer_id(self) -> str:
        return self.joined["peer_id"]

    async def send(self, **msg) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 5, *, states: bool = False) -> dict:
        """The next message; peer-state news goes to `states` and `held` notices to `held` unless
        asked for, as a link's ups and downs may interleave with anything a test expects."""
        while True:
            got = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if states or got.get("type") not in ("peer-state", "held"):
                return got
            (self.states if got["type"] == "peer-state" else self.held).append(got)

    async def ask(self, timeout: float = 5, **msg) -> dict:
        await self.send(**msg)
        return await self.recv(timeout)

    async def error(self, code: str, **msg) -> None:
        """Send one bad message: an error with that code comes back and the connection stays open."""
        got = await self.ask(**msg)
        assert got["type"] == "error" and got["code"] == code, got
        assert got["message"]

    async def closed(self, timeout: float = 5) -> tuple[list[dict], int | None]:
        """Everything received until the server closes, and the close code it sent."""
        got = []
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))
        except ConnectionClosed as exc:
            return got, exc.rcvd.code if exc.rcvd else None

    async def quiet(self, seconds: float = 0.2) -> None:
        with pytest.raises(asyncio.TimeoutError):
            got = await self.recv(seconds)
            raise AssertionError(f"expected nothing, got {got}")

    async def alive(self) -> None:
        assert (await self.ask(type="ping")) == {"type": "pong"}


class Live:
    """A real server with the seeded world and one accepted consult (a-clinician ↔ b-specialist)."""

    def __init__(self, app, host, w, stack, ws_url: str | None = None) -> None:
        self.app, self.host, self.w, self.stack = app, host, w, stack
        self.ws_url = ws_url or f"ws://{host}/api/v1/signaling"
        self.consult: dict = {}

    @property
    def server(self):
        return self.app.state.signaling

    async def new_consult(self) -> dict:
        c = self.w.client
        consult = (
            await c.post("/api/v1/consults", json=CONSULT, headers=await self.w.headers("a-clinician"))
        ).json()
        resp = await c.post(
            f"/api/v1/consults/{consult['id']}/accept", headers=await self.w.headers("b-specialist")
        )
        assert resp.status_code == 200, resp.text
        return consult

    async def grant(self, who: str, consult: dict | None = None) -> dict:
        consult = consult or self.consult
        resp = await self.w.client.post(
            f"/api/v1/consults/{consult['id']}/call-token", headers=await self.w.headers(who)
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def token(self, who: str, consult: dict | None = None) -> str:
        return (await self.grant(who, consult))["token"]

    async def connect(self, origin: str | None = None) -> Sock:
        ws = await self.stack.enter_async_context(
            websockets.connect(
                self.ws_url,
                compression=None,
                proxy=None,
                origin=origin,
                open_timeout=5,
            )
        )
        return Sock(ws)

    async def join(
        self,
        who: str = "a-clinician",
        consult: dict | None = None,
        token: str | None = None,
        origin: str | None = None,
    ) -> Sock:
        token = token or await self.token(who, consult)  # before connecting: the join clock runs from there
        s = await self.connect(origin)
        got = await s.ask(type="join", token=token)
        assert got["type"] == "joined", got
        s.joined = got
        return s

    async def refused(self, code: str, first: dict | str, close: int = 1008) -> None:
        """A fresh connection whose first message is refused with `code` and closed with `close`."""
        s = await self.connect()
        await s.ws.send(first if isinstance(first, str) else json.dumps(first))
        got = await s.recv()
        assert got["type"] == "error" and got["code"] == code, got
        rest, closed = await s.closed()
        assert rest == [] and closed == close, (rest, closed)

    async def pair(self, consult: dict | None = None) -> tuple[Sock, Sock]:
        a = await self.join("a-clinician", consult)
        b = await self.join("b-specialist", consult)
        # Each side learns who the other is in the consult from the call token alone (no REST round trip).
        assert b.joined["peers"] == [
            {
                "peer_id": a.peer_id,
                "user_id": str(self.w.users["a-clinician"]),
                "role": "requester",
                "name": "a-clinician",
                "state": "connected",
            }
        ]
        assert (await a.recv()) == {
            "type": "peer-joined",
            "peer_id": b.peer_id,
            "user_id": str(self.w.users["b-specialist"]),
            "role": "assignee",
            "name": "b-specialist",
        }
        return a, b

    async def wait(self, predicate, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)

    async def detached(self, s: Sock) -> None:
        """Until this server has noticed that the socket is gone (the peer is kept, not connected)."""

        def gone():
            peer = self.server.rooms.local(s.joined["room"], s.peer_id)
            return peer is not None and not peer.connected

        await self.wait(gone)


async def relays(a: Sock, b: Sock) -> None:
    """The well-behaved pair still talks both ways."""
    n = uuid.uuid4().int % 10_000
    await a.send(type="offer", to=b.peer_id, sdp=sdp(n))
    assert (await b.recv()) == {"type": "offer", "from": a.peer_id, "sdp": sdp(n)}
    await b.send(type="candidate", to=a.peer_id, candidate=CAND, sdpMid="0", sdpMLineIndex=0)
    assert (await a.recv()) == {
        "type": "candidate",
        "from": b.peer_id,
        "candidate": CAND,
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


async def heard(*socks: Sock, kind: str) -> None:
    for s in socks:
        assert (await s.recv())["type"] == kind


def abort(s: Sock) -> None:
    """Lose the link: the TCP connection goes away without a close frame."""
    s.ws.transport.abort()


def server_errors(caplog) -> list[str]:
    """What the server logged at ERROR (an exception escaping a connection, a call not recorded)."""
    return [
        f"{r.name}: {r.getMessage()} {r.exc_text or ''}"[:300]
        for when in ("setup", "call", "teardown")
        for r in caplog.get_records(when)
        if r.levelno >= logging.ERROR
    ]


@pytest.fixture
async def live(env, settings_overrides, route, caplog):
    await reset_env(env)
    port = free_port() if route == "port" else None
    overrides = settings_overrides | ({"signaling_port": port} if port else {})
    uvicorn_errors = logging.getLogger("uvicorn.error")  # it does not propagate to caplog's handler
    uvicorn_errors.addHandler(caplog.handler)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(uvicorn_errors.removeHandler, caplog.handler)
        app, host = await stack.enter_async_context(
            serve(make_settings(env["database_url"], env["redis_url"], **overrides))
        )
        w = await seed_world(app, await stack.enter_async_context(http(host)))
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty="trauma-surgery",
        )
        sockets = contextlib.AsyncExitStack()
        stack.push_async_callback(sockets.aclose)  # sockets close before the server stops
        url = f"ws://127.0.0.1:{port}/api/v1/signaling" if port else f"ws://{host}/api/v1/signaling"
        live = Live(app, host, w, sockets, url)
        live.consult = await live.new_consult()
        yield live
    assert server_errors(caplog) == []  # never a crash, whatever the clients did


# ---- rooms are separate ----


async def test_peer_of_another_consult_cannot_reach_this_call(live):
    a, b = await live.pair()
    other = await live.new_consult()
    y = await live.join("a-clinician", other)
    assert y.joined["room"] == f"consult-{other['id']}" != a.joined["room"]
    assert y.joined["peers"] == []
    await a.quiet(0.1)  # no peer-joined leaks across rooms
    await y.error("unknown_peer", type="offer", to=a.peer_id, sdp=SDP)
    await y.error("unknown_peer", type="candidate", to=b.peer_id, candidate=CAND, sdpMid="0")
    await a.error("unknown_peer", type="answer", to=y.peer_id, sdp=SDP)
    await y.send(type="leave")
    await a.quiet(0.1)  # no peer-left either
    await relays(a, b)


async def test_token_of_one_consult_does_not_open_another(live):
    other = await live.new_consult()
    tok = await live.token("a-clinician", other)
    s = await live.join(token=tok)
    assert s.joined["room"] == f"consult-{other['id']}"


# ---- tokens ----


@embedded
async def test_expired_token(live):
    a, b = await live.pair()
    s, now = live.app.state.settings, int(time.time())
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.signaling_audience,
        "sub": str(live.w.users["a-clinician"]),
        "org": str(live.w.orgs["A"]),
        "room": f"consult-{live.consult['id']}",
        "cid": live.consult["id"],
        "iat": now - 400,
        "nbf": now - 400,
        "exp": now - s.clock_leeway - 30,
        "jti": uuid.uuid4().hex,
        "typ": "call",
    }
    expired = live.app.state.auth.signer.sign(claims)
    await live.refused("invalid_token", {"type": "join", "token": expired})
    fresh = live.app.state.auth.signer.sign(claims | {"exp": now + 60, "jti": uuid.uuid4().hex})
    assert (await live.join(token=fresh)).joined["type"] == "joined"  # the same claims, in date, pass
    await heard(a, b, kind="peer-joined")
    await relays(a, b)


async def test_replayed_token(live):
    a = await live.join("a-clinician")
    tok = await live.token("b-specialist")
    b = await live.join(token=tok)
    await a.recv()  # peer-joined
    await live.refused("token_used", {"type": "join", "token": tok})  # while the first use is connected
    await b.send(type="leave")
    assert (await a.recv())["type"] == "peer-left"
    await live.refused("token_used", {"type": "join", "token": tok})  # and after it left
    b = await live.join("b-specialist")
    assert (await a.recv())["type"] == "peer-joined"
    await relays(a, b)


async def test_replay_race_admits_one(live):
    tok = await live.token("a-clinician")
    socks = [await live.connect() for _ in range(5)]
    await asyncio.gather(*(s.send(type="join", token=tok) for s in socks))
    answers = [await s.recv() for s in socks]
    assert sorted(m.get("code", m["type"]) for m in answers) == ["joined"] + ["token_used"] * 4


@embedded
@pytest.mark.invalid_frames
async def test_access_refresh_and_forged_tokens_refused(live):
    a, b = await live.pair()
    pair = await live.w.login("a-clinician")
    for tok in (pair["access_token"], pair["refresh_token"]):
        await live.refused("invalid_token", {"type": "join", "token": tok})
    good = await live.token("a-clinician")
    head, body, sig = good.split(".")
    forged = ".".join([head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    await live.refused("invalid_token", {"type": "join", "token": forged})
    await live.refused("invalid_token", {"type": "join", "token": "not-a-jwt"})
    await live.refused("bad_message", {"type": "join"})
    assert (await live.join(token=good)).joined["type"] == "joined"  # refused attempts did not spend it
    await heard(a, b, kind="peer-joined")
    await relays(a, b)


@embedded
async def test_call_token_only_for_participants(live):
    url = f"/api/v1/consults/{live.consult['id']}/call-token"
    c = live.w.client
    resp = await c.post(
        url, headers=await live.w.headers("a-coordinator")
    )  # sees the consult, is no participant
    assert resp.status_code == 403, resp.text
    for who in ("c-clinician", "b-clinician", "b-coordinator", "a-specialist"):
        assert (await c.post(url, headers=await live.w.headers(who))).status_code == 404, who
    assert (await c.post(url)).status_code == 401
    requested = (
        await c.post(
            "/api/v1/consults",
            json=CONSULT | {"specialty": "burns"},
            headers=await live.w.headers("a-clinician"),
        )
    ).json()
    resp = await c.post(
        f"/api/v1/consults/{requested['id']}/call-token", headers=await live.w.headers("a-clinician")
    )
    assert resp.status_code == 409, resp.text
    assert (await live.grant("a-clinician"))["room"] == f"consult-{live.consult['id']}"


# ---- Origin ----


@embedded
@settings(allowed_origins=["https://app.liaison.test"])
async def test_origin_allowlist(live):
    for bad in (
        "https://evil.test",
        "https://app.liaison.test.evil.test",
        "http://app.liaison.test",
        "https://app.liaison.test:8443",
        "null",
    ):
        with pytest.raises(InvalidStatus) as exc:
            await live.connect(origin=bad)
        assert exc.value.response.status_code == 403, bad
    a = await live.join("a-clinician", origin="https://app.liaison.test")
    b = await live.join("b-specialist")  # no Origin: not a browser, passes
    await a.recv()
    await relays(a, b)


# ---- size ----


@embedded
@settings(signaling_max_message_bytes=2048)
@pytest.mark.invalid_frames
async def test_oversize_message_closes_1009(live):
    a, b = await live.pair()
    c = await live.join("a-clinician")
    await a.recv(), await b.recv()  # peer-joined
    filler = 2048 - len(json.dumps({"type": "ping", "x": ""}))
    assert (await c.ask(type="ping", x="x" * filler)) == {"type": "pong"}  # exactly at the limit passes
    await c.send(type="offer", to=a.peer_id, sdp="v=0" + "a" * 2100)
    got, code = await c.closed()
    assert code == 1009 and got == []
    s = await live.connect()  # before joining, too
    await s.send(type="join", token="x" * 3000)
    assert (await s.closed())[1] == 1009
    await relays(a, b)


# ---- malformed messages ----


@embedded
@pytest.mark.invalid_frames
async def test_malformed_messages_answer_errors_and_keep_the_connection(live):
    a, b = await live.pair()
    c = await live.join("a-clinician")
    await a.recv(), await b.recv()
    for raw, code in [
        ("{nope", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('"ping"', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ("{}", "unknown_type"),
        ("[" * 30_000, "bad_json"),  # nesting deeper than the parser's stack
        (f'{{"type": "offer", "to": "{a.peer_id}"}}', "bad_message"),
    ]:
        await c.ws.send(raw)
        got = await c.recv()
        assert got["type"] == "error" and got["code"] == code, (raw[:30], got)
    await c.error("bad_sdp", type="offer", to=a.peer_id, sdp="hello")
    await c.error("bad_message", type="answer", to=a.peer_id, sdp="")
    await c.error("bad_sdp", type="answer", to=a.peer_id, sdp="o=- 0 0 IN IP4 0.0.0.0")
    await c.error("bad_candidate", type="candidate", to=a.peer_id, candidate="1 1 udp 1 1.2.3.4 5 typ host")
    await c.error("bad_candidate", type="candidate", to=a.peer_id, candidate=CAND, sdpMLineIndex="0")
    await c.error("bad_candidate", type="candidate", to=a.peer_id)
    await c.ws.send(json.dumps({"type": "ping"}).encode())  # a binary frame
    got = await c.recv()
    assert got in (
        {"type": "pong"},
        {"type": "error", "code": "bad_message", "message": got.get("message")},
    ), got
    await c.alive()
    await a.quiet(0.1)  # none of it reached the others
    await relays(a, b)


@embedded
async def test_unknown_peer_self_and_already_joined(live):
    a, b = await live.pair()
    await a.error("unknown_peer", type="offer", to="0123456789abcdef", sdp=SDP)
    await a.error("unknown_peer", type="offer", to=a.peer_id, sdp=SDP)  # not to oneself
    await a.error("already_joined", type="join", token=await live.token("a-clinician"))
    await a.error("already_joined", type="resume", resume=a.joined["resume"])
    await a.alive()
    await relays(a, b)


@embedded
@pytest.mark.invalid_frames
async def test_first_message_must_be_join_or_resume(live):
    a, b = await live.pair()
    await live.refused("join_first", {"type": "ping"})
    await live.refused("join_first", {"type": "offer", "to": a.peer_id, "sdp": SDP})
    await live.refused("bad_json", "{{")
    await live.refused("resume_failed", {"type": "resume", "resume": "not-a-secret"})
    await a.quiet(0.1)
    await relays(a, b)


# ---- timeouts ----


@embedded
@settings(signaling_join_timeout=0.3)
async def test_no_join_within_timeout_closes_1008(live):
    a, b = await live.pair()
    s = await live.connect()
    started = time.monotonic()
    got, code = await s.closed()
    assert [m["code"] for m in got] == ["join_timeout"] and code == 1008
    assert 0.25 < time.monotonic() - started < 3
    await relays(a, b)


@embedded
@listeners
@settings(signaling_idle_timeout=0.5, signaling_ping_interval=0.2, signaling_ping_timeout=0.5)
async def test_quiet_call_that_answers_pings_stays(live):
    """No application ping for four idle timeouts: the sockets answer protocol pings, so the call lives."""
    a, b = await live.pair()
    await asyncio.sleep(2.0)
    await relays(a, b)
    assert a.states == b.states == []


@embedded
@listeners
@settings(signaling_ping_interval=0.2, signaling_ping_timeout=0.4, signaling_grace_seconds=4.0)
async def test_peer_that_stops_answering_is_reconnecting_then_left(live):
    a, b = await live.pair()
    b.ws.transport.pause_reading()  # b's pings go unanswered, as when its network is gone
    started = time.monotonic()
    public = {
        "peer_id": b.peer_id,
        "user_id": str(live.w.users["b-specialist"]),
        "role": "assignee",
        "name": "b-specialist",
    }
    assert (await a.recv(3, states=True)) == {"type": "peer-state", **public, "state": "reconnecting"}
    assert time.monotonic() - started < 4.0  # shown while the grace still runs, not at its end
    assert (await a.recv(8, states=True)) == {"type": "peer-left", **public}
    assert time.monotonic() - started > 1.5
    abort(b)


@embedded
@listeners
@settings(signaling_grace_seconds=30.0)
@pytest.mark.parametrize("code", [1000, 1001])
async def test_socket_closed_without_leave_departs_at_once(live, code):
    """A tab closed (1001) or a client closing politely (1000) has left: no 30 s grace."""
    a, b = await live.pair()
    await b.ws.close(code)
    assert (await a.recv(1, states=True))["type"] == "peer-left"
    assert a.states == []
    await live.refused("resume_failed", {"type": "resume", "resume": b.joined["resume"]})


# ---- rate ----


@embedded
@settings(signaling_rate_per_second=5.0, signaling_rate_burst=5)
async def test_rate_limit_drops_then_closes(live):
    a, b = await live.pair()
    polite = await live.join("a-clinician")
    await a.recv(), await b.recv()
    for _ in range(7):  # two over the burst: dropped with an error, the connection stays
        await polite.send(type="ping")
    got = [await polite.recv() for _ in range(7)]
    assert [m.get("code", m["type"]) for m in got].count("rate_limited") >= 1
    assert [m["type"] for m in got].count("pong") >= 5
    await asyncio.sleep(0.5)
    await polite.alive()

    flood = await live.join("b-specialist")
    await a.recv(), await b.recv(), await polite.recv()
    for _ in range(40):
        with contextlib.suppress(ConnectionClosed):
            await flood.send(type="offer", to=a.peer_id, sdp=SDP)
    got, code = await flood.closed()
    assert code == 1008
    assert got[-1]["code"] == "rate_limited"
    delivered = [m for m in got if m.get("code") != "rate_limited"]
    assert delivered == []
    offers = 0
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            m = await a.recv(0.3)
            offers += m["type"] == "offer"
    assert 5 <= offers <= 10  # the burst went through, the rest was dropped
    await relays(a, b)


# ---- room and connection limits ----


@settings(signaling_max_peers=3)
async def test_room_full(live):
    a, b = await live.pair()
    c = await live.join("a-clinician")
    await a.recv(), await b.recv()
    waiting = await live.token("b-specialist")
    await live.refused("room_full", {"type": "join", "token": waiting})
    await c.send(type="leave")
    assert (await c.closed())[1] == 1000
    await heard(a, b, kind="peer-left")
    d = await live.join("b-specialist", token=waiting)  # the place is free again, and the token was not spent
    assert len(d.joined["peers"]) == 2
    await heard(a, b, kind="peer-joined")
    await relays(a, b)


@embedded
@settings(signaling_connections_per_user=2)
async def test_too_many_connections_per_user(live):
    a, b = await live.pair()
    a2 = await live.join("a-clinician")
    await a.recv(), await b.recv()
    await live.refused("too_many_connections", {"type": "join", "token": await live.token("a-clinician")})
    other = await live.new_consult()  # the limit is per user, across calls
    waiting = await live.token("a-clinician", other)
    await live.refused("too_many_connections", {"type": "join", "token": waiting})
    await live.join("b-specialist", other)  # another user is not affected
    await a2.send(type="leave")
    assert (await a2.closed())[1] == 1000
    await heard(a, b, kind="peer-left")
    await live.join("a-clinician", other, token=waiting)  # refused by a limit: the token was not spent
    await relays(a, b)


@embedded
@settings(signaling_connections_per_user=2)
async def test_client_gone_before_joined_leaves_no_ghost(live):
    """A client that sends join and drops at once must not keep a place or count against its user.
    (The room is marked in the ledger, so each join waits for the database: the client is gone by the
    time the server answers. A join answered first would rightly keep its place for a resume.)"""
    await live.app.state.ledger.end(rooms=(f"consult-{live.consult['id']}",))
    for _ in range(3):
        s = await live.connect()
        await s.send(type="join", token=await live.token("a-clinician"))
        abort(s)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    b = await live.join("b-specialist")
    assert b.joined["peers"] == []
    a = await live.join("a-clinician")
    assert (await b.recv())["type"] == "peer-joined"
    await live.join("a-clinician")
    await heard(a, b, kind="peer-joined")
    await relays(a, b)


# ---- resume ----


@settings(signaling_grace_seconds=5.0)
async def test_resume_within_grace(live):
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    for n in range(5):
        await a.send(type="offer", to=b.peer_id, sdp=sdp(n))
    await a.send(type="candidate", to=b.peer_id, candidate=CAND, sdpMid="0", sdpMLineIndex=0)
    await a.alive()  # no error for the sender: the messages were kept, and it was told so
    assert a.held == [{"type": "held", "to": b.peer_id, "kind": "offer", "state": "reconnecting"}] * 5 + [
        {"type": "held", "to": b.peer_id, "kind": "candidate", "state": "reconnecting"}
    ]
    b2 = await live.connect()
    resumed = await b2.ask(type="resume", resume=b.joined["resume"])
    assert resumed["type"] == "joined" and resumed["resumed"] is True
    assert resumed["peer_id"] == b.peer_id and [p["peer_id"] for p in resumed["peers"]] == [a.peer_id]
    b2.joined = resumed
    got = [await b2.recv() for _ in range(6)]
    assert got == [{"type": "offer", "from": a.peer_id, "sdp": sdp(n)} for n in range(5)] + [
        {"type": "candidate", "from": a.peer_id, "candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0}
    ]
    await a.quiet(0.3)  # a saw no peer-left (nor a new peer-joined), only b's link going and coming
    assert [m["state"] for m in a.states] == ["reconnecting", "connected"]
    await relays(a, b2)
    await b2.send(type="leave")
    assert (await a.recv())["type"] == "peer-left"


@settings(signaling_grace_seconds=0.5)
async def test_resume_after_grace_fails(live):
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    await a.send(type="offer", to=b.peer_id, sdp=SDP)
    left = await a.recv(3)
    assert left == {
        "type": "peer-left",
        "peer_id": b.peer_id,
        "user_id": str(live.w.users["b-specialist"]),
        "role": "assignee",
        "name": "b-specialist",
    }
    await live.refused("resume_failed", {"type": "resume", "resume": b.joined["resume"]})
    await a.error("unknown_peer", type="offer", to=b.peer_id, sdp=SDP)
    b2 = await live.join("b-specialist")  # a new call token is the way back in
    assert b2.peer_id != b.peer_id
    assert (await a.recv())["type"] == "peer-joined"
    await relays(a, b2)


@embedded
@settings(signaling_grace_seconds=3.0, signaling_buffer_messages=3)
async def test_buffer_of_a_detached_peer_is_bounded(live):
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    for n in range(3):
        await a.send(type="offer", to=b.peer_id, sdp=sdp(n))
    await a.error("peer_buffer_full", type="offer", to=b.peer_id, sdp=sdp(3))
    assert [h["kind"] for h in a.held] == ["offer"] * 3  # the fourth was not held: an error instead
    b2 = await live.connect()
    assert (await b2.ask(type="resume", resume=b.joined["resume"]))["peer_id"] == b.peer_id
    assert [(await b2.recv())["sdp"] for _ in range(3)] == [sdp(n) for n in range(3)]
    b2.joined = b.joined
    await relays(a, b2)


@embedded
@settings(signaling_grace_seconds=3.0, signaling_connections_per_user=2)
async def test_resume_takes_over_a_half_open_connection(live):
    """The server still thinks the old socket is open: resume replaces it, and counts it once."""
    a, b = await live.pair()
    a2 = await live.connect()
    resumed = await a2.ask(type="resume", resume=a.joined["resume"])
    assert resumed["peer_id"] == a.peer_id
    got, code = await a.closed()
    assert code == 1000
    a2.joined = resumed
    await b.quiet(0.2)
    await relays(a2, b)
    extra = await live.join("a-clinician")  # the user holds 1 connection: one more fits, not two
    await b.recv()
    await live.refused("too_many_connections", {"type": "join", "token": await live.token("a-clinician")})
    await extra.send(type="leave")
    assert (await extra.closed())[1] == 1000
    await heard(b, kind="peer-left")
    await live.join("a-clinician")


@embedded
@settings(signaling_grace_seconds=0.5)
async def test_client_gone_while_resuming_still_expires(live):
    """A resume whose client drops before hearing `joined` must not leave the peer 'connected' forever."""
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    for n in range(2):
        await a.send(type="offer", to=b.peer_id, sdp=sdp(n))
    b2 = await live.connect()
    await b2.send(type="resume", resume=b.joined["resume"])
    abort(b2)
    assert (await a.recv(4))["type"] == "peer-left"
    await live.wait(lambda: live.server.per_user[str(live.w.users["b-specialist"])] == 0)
    b3 = await live.join("b-specialist")
    await heard(a, kind="peer-joined")
    await relays(a, b3)


@settings(
    signaling_grace_seconds=5.0,
    signaling_rate_per_second=100_000.0,
    signaling_rate_burst=100_000,
    signaling_buffer_messages=10_000,
)
async def test_resume_while_messages_keep_coming(live):
    """`joined` comes first, then every message in the order sent: the backlog, then what came during the resume."""
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    total = 300

    async def flood():
        for n in range(total):
            await a.send(type="offer", to=b.peer_id, sdp=sdp(n))
            if n % 5 == 0:
                await asyncio.sleep(0)

    sending = asyncio.create_task(flood())
    await asyncio.sleep(0.005)
    b2 = await live.connect()
    await b2.send(type="resume", resume=b.joined["resume"])
    await sending
    got = [await b2.recv(10) for _ in range(total + 1)]
    assert got[0]["type"] == "joined" and got[0]["peer_id"] == b.peer_id, got[0]
    assert [m["sdp"] for m in got[1:]] == [sdp(n) for n in range(total)]
    b2.joined = got[0]
    await relays(a, b2)


# ---- candidates ----


@embedded
@listeners
@pytest.mark.invalid_frames
async def test_candidate_travels_as_browsers_produce_it(live):
    """RTCIceCandidate.toJSON(): candidate, sdpMid, sdpMLineIndex, usernameFragment, relayed intact."""
    a, b = await live.pair()
    sent = {"candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "Xk3f"}
    await a.send(type="candidate", to=b.peer_id, **sent)
    assert (await b.recv()) == {"type": "candidate", "from": a.peer_id, **sent}
    end = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": None}
    await a.send(type="candidate", to=b.peer_id, **end)
    assert (await b.recv()) == {"type": "candidate", "from": a.peer_id, **end}
    await a.error("bad_candidate", type="candidate", to=b.peer_id, candidate=CAND, usernameFragment=7)
    await a.error("bad_candidate", type="candidate", to=b.peer_id, candidate=CAND, usernameFragment="u" * 257)


# ---- send-after-close races ----


@embedded
@listeners
@settings(signaling_connections_per_user=50, signaling_rate_burst=10_000)
async def test_leave_then_close_and_close_during_relay_never_crash(live):
    """Issue #12 item 3: 200 rounds of `leave` followed at once by a close, and of a close while the
    other peer relays to it; the fixture then finds no error in the server's log."""
    a = await live.join("a-clinician")
    tokens = [await live.token("b-specialist") for _ in range(200)]
    for n, token in enumerate(tokens):
        b = await live.connect()
        got = await b.ask(type="join", token=token)
        assert got["type"] == "joined", got
        if n % 2:
            await b.send(type="leave")
        else:
            for k in range(5):
                await a.send(type="offer", to=got["peer_id"], sdp=sdp(k))
        await b.ws.close(1000 + n % 2)
    await live.wait(lambda: not live.server.sockets.keys() - {a.peer_id})
    heard = Counter()
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            heard[(await a.recv(0.5))["type"]] += 1
    assert heard["peer-joined"] == heard["peer-left"] == 200, heard  # every one gone at once, none twice
    await a.alive()


# ---- a reconnecting peer is not present ----


@settings(signaling_grace_seconds=10.0, signaling_max_peers=3)
async def test_a_reconnecting_peer_is_listed_so_holds_no_place_and_loses_it_to_a_full_room(live):
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    c = await live.join("a-clinician")
    assert {p["peer_id"]: p["state"] for p in c.joined["peers"]} == {
        a.peer_id: "connected",
        b.peer_id: "reconnecting",
    }
    await live.join("b-specialist")  # the third connected peer: b, reconnecting, holds no place
    await heard(a, a, c, kind="peer-joined")  # a hears c and d come, c hears d
    await c.send(type="offer", to=b.peer_id, sdp=SDP)
    await c.alive()
    assert c.held == [{"type": "held", "to": b.peer_id, "kind": "offer", "state": "reconnecting"}]
    b2 = await live.connect()
    refused = await b2.ask(type="resume", resume=b.joined["resume"])
    assert refused["type"] == "error" and refused["code"] == "room_full", refused
    assert (await b2.closed())[1] == 1008
    left = await a.recv()
    assert left["type"] == "peer-left" and left["peer_id"] == b.peer_id  # its place is gone: it has left
    await live.refused("resume_failed", {"type": "resume", "resume": b.joined["resume"]})
