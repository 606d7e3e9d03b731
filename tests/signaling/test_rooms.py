"""signaling.core.rooms and signaling.core.messages as pure code: no sockets, no clock, no database."""

import json

import pytest

from signaling.core.messages import (
    MAX_CANDIDATE,
    MAX_ID,
    MAX_SDP,
    Join,
    Leave,
    Ping,
    ProtocolError,
    Relay,
    Resume,
    error,
    parse,
)
from signaling.core.rooms import Limits, Rooms, Send, connected, held

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CAND = "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host"


def rooms(**limits) -> Rooms:
    return Rooms(Limits(**({"max_peers": 3, "grace_seconds": 10.0, "buffer_messages": 4} | limits)))


def offer(to: str, n: int = 0) -> Relay:
    return Relay("offer", to, {"sdp": f"{SDP}a=n:{n}\r\n"})


# ---- join and the room limit ----


def test_join_announces_to_connected_peers_only():
    r = rooms()
    a, sends = r.join(room="x", user_id="u1", org_id="o1")
    assert sends == [] and a.connected and a.room == "x"
    b, sends = r.join(room="x", user_id="u2", org_id="o2")
    assert sends == [Send(a.peer_id, {"type": "peer-joined", "peer_id": b.peer_id, "user_id": "u2"})]
    r.detach(a, now=1.0)
    c, sends = r.join(room="x", user_id="u3", org_id="o1")
    assert sends == [Send(b.peer_id, {"type": "peer-joined", "peer_id": c.peer_id, "user_id": "u3"})]
    assert {p.peer_id for p in r.peers("x")} == {a.peer_id, b.peer_id, c.peer_id}
    assert len({a.peer_id, b.peer_id, c.peer_id}) == 3 and len({a.secret, b.secret, c.secret}) == 3


def test_room_full_counts_connected_peers_here_and_remote_not_reconnecting_ones():
    r = rooms(max_peers=3)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    r.join(room="x", user_id="u2", org_id="o")
    with pytest.raises(ProtocolError) as exc:
        r.join(room="x", user_id="u3", org_id="o", remote_count=1)
    assert exc.value.code == "room_full"
    r.detach(a, now=0.0)  # a reconnecting peer holds no place
    r.join(room="x", user_id="u3", org_id="o", remote_count=1)
    with pytest.raises(ProtocolError) as exc:
        r.join(room="x", user_id="u4", org_id="o", remote_count=1)
    assert exc.value.code == "room_full"
    assert len(r.peers("x")) == 3
    remote = [{"peer_id": "f1", "user_id": "u5"}, {"peer_id": "f2", "user_id": "u6", "state": "reconnecting"}]
    assert connected(remote) == 1


def test_a_reconnecting_peer_is_listed_with_its_state():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    r.detach(a, now=0.0)
    c, _ = r.join(room="x", user_id="u3", org_id="o")
    far = [{"peer_id": "f", "user_id": "u4", "state": "reconnecting"}, {"peer_id": "g", "user_id": "u5"}]
    assert [(p["peer_id"], p["state"]) for p in r.others(c, far)] == [
        (a.peer_id, "reconnecting"),
        (b.peer_id, "connected"),
        ("f", "reconnecting"),
        ("g", "connected"),
    ]


def test_resume_into_a_room_filled_meanwhile_is_refused_room_full():
    r = rooms(max_peers=2, grace_seconds=10.0)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    r.join(room="x", user_id="u2", org_id="o")
    r.detach(a, now=0.0)
    r.join(room="x", user_id="u3", org_id="o")  # takes a's place
    with pytest.raises(ProtocolError) as exc:
        r.resume(a.secret, now=1.0)
    assert exc.value.code == "room_full" and not a.connected
    r.leave(a)
    b, _ = r.join(room="y", user_id="u1", org_id="o")
    r.detach(b, now=0.0)
    with pytest.raises(ProtocolError) as exc:  # the place taken on another node
        r.resume(b.secret, now=1.0, remote_count=2)
    assert exc.value.code == "room_full"
    assert r.resume(b.secret, now=1.0, remote_count=1)[0] is b  # room for it: back


def test_room_full_from_remote_peers_leaves_no_empty_room():
    r = rooms(max_peers=2)
    with pytest.raises(ProtocolError) as exc:
        r.join(room="y", user_id="u1", org_id="o", remote_count=2)
    assert exc.value.code == "room_full"
    assert "y" not in r.rooms
    r.join(room="y", user_id="u1", org_id="o", remote_count=1)  # one local + one remote fits


def test_rooms_are_separate():
    r = rooms(max_peers=2)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, sends = r.join(room="y", user_id="u2", org_id="o")
    assert sends == []
    assert r.relay(a, offer(b.peer_id)) == []  # b is not in a's room
    assert r.local("x", b.peer_id) is None and r.local("y", b.peer_id) is b


# ---- relay and delivery ----


def test_relay_to_connected_peer_is_stamped_with_sender():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    msg = Relay("candidate", b.peer_id, {"candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0})
    assert r.relay(a, msg) == [
        Send(
            b.peer_id,
            {"type": "candidate", "from": a.peer_id, "candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0},
        )
    ]


def test_relay_to_self_or_unknown_sends_nothing():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    assert r.relay(a, offer(a.peer_id)) == []
    assert r.relay(a, offer("nobody")) == []


def test_relay_to_detached_peer_is_buffered_in_order_and_bounded():
    r = rooms(buffer_messages=3)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    r.detach(b, now=5.0)
    for n in range(3):  # held, and the sender is told each time
        assert r.relay(a, offer(b.peer_id, n)) == [Send(a.peer_id, held(b.peer_id, "offer"))]
    with pytest.raises(ProtocolError) as exc:
        r.relay(a, offer(b.peer_id, 3))
    assert exc.value.code == "peer_buffer_full"
    assert [m["sdp"].rsplit("n:", 1)[1] for m in b.buffer] == ["0\r\n", "1\r\n", "2\r\n"]
    with pytest.raises(ProtocolError):  # deliver (used for messages from other nodes) has the same bound
        r.deliver(b, {"type": "offer"})


# ---- detach, resume, expiry ----


def test_resume_within_grace_returns_buffer_in_order_and_reconnects():
    r = rooms(grace_seconds=10.0)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    r.detach(b, now=100.0)
    assert not b.connected and b.detached_at == 100.0
    for n in range(3):
        r.relay(a, offer(b.peer_id, n))
    peer, queued = r.resume(b.secret, now=109.9)
    assert peer is b and peer.connected and peer.detached_at is None
    assert [m["from"] for m in queued] == [a.peer_id] * 3
    assert [m["sdp"][-4:] for m in queued] == ["n:0\r\n"[-4:], "n:1\r\n"[-4:], "n:2\r\n"[-4:]]
    assert list(b.buffer) == []
    # connected again: messages go straight out, and the buffer stays empty
    assert r.relay(a, offer(b.peer_id, 9)) == [
        Send(b.peer_id, {"type": "offer", "from": a.peer_id, "sdp": f"{SDP}a=n:9\r\n"})
    ]
    assert r.expired(now=1000.0) == []


def test_resume_after_grace_fails_and_peer_expires():
    r = rooms(grace_seconds=10.0)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    r.detach(b, now=100.0)
    assert r.expired(now=110.0) == []
    assert r.expired(now=110.1) == [b]
    with pytest.raises(ProtocolError) as exc:
        r.resume(b.secret, now=110.1)
    assert exc.value.code == "resume_failed"
    assert r.leave(b) == [Send(a.peer_id, {"type": "peer-left", "peer_id": b.peer_id, "user_id": "u2"})]
    with pytest.raises(ProtocolError) as exc:
        r.resume(b.secret, now=100.5)  # gone: the secret is forgotten
    assert exc.value.code == "resume_failed"


def test_time_zero_is_a_time():
    """Time comes in as an argument: a peer detached at t=0 expires like any other."""
    r = rooms(grace_seconds=1.0)
    r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    r.detach(b, now=0.0)
    assert r.expired(now=5.0) == [b]
    with pytest.raises(ProtocolError) as exc:
        r.resume(b.secret, now=5.0)
    assert exc.value.code == "resume_failed"


def test_find_does_not_resume():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    r.detach(a, now=1.0)
    assert r.find(a.secret) is a and r.find("nope") is None
    assert not a.connected and a.detached_at == 1.0
    r.leave(a)
    assert r.find(a.secret) is None


def test_resume_with_unknown_secret_fails():
    r = rooms()
    r.join(room="x", user_id="u1", org_id="o")
    for secret in ("", "nope", "x" * 128):
        with pytest.raises(ProtocolError) as exc:
            r.resume(secret, now=0.0)
        assert exc.value.code == "resume_failed"


def test_resume_of_connected_peer_takes_over():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    peer, queued = r.resume(a.secret, now=50.0)
    assert peer is a and queued == [] and a.connected


def test_expired_lists_only_detached_peers_past_grace():
    r = rooms(max_peers=5, grace_seconds=2.0)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    c, _ = r.join(room="y", user_id="u3", org_id="o")
    r.detach(b, now=10.0)
    r.detach(c, now=11.0)
    assert r.expired(now=12.5) == [b]
    assert set(map(id, r.expired(now=13.5))) == {id(b), id(c)}
    assert a not in r.expired(now=1e9)


# ---- leave ----


def test_leave_announces_to_connected_peers_and_empties_room():
    r = rooms()
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    c, _ = r.join(room="x", user_id="u3", org_id="o")
    r.detach(c, now=0.0)
    assert r.leave(a) == [Send(b.peer_id, {"type": "peer-left", "peer_id": a.peer_id, "user_id": "u1"})]
    assert r.leave(a) == []  # twice is nothing
    assert r.leave(b) == []  # only a detached peer hears nothing
    assert r.leave(c) == []
    assert "x" not in r.rooms and r.peers("x") == []
    with pytest.raises(ProtocolError):
        r.resume(a.secret, now=0.0)


def test_left_peer_frees_its_place():
    r = rooms(max_peers=2)
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    r.join(room="x", user_id="u2", org_id="o")
    r.leave(a)
    r.join(room="x", user_id="u3", org_id="o")


# ---- parse: every message type ----


def test_parse_every_type():
    assert parse(json.dumps({"type": "join", "token": "abc"})) == Join("abc")
    assert parse(json.dumps({"type": "resume", "resume": "s3cret"})) == Resume("s3cret")
    assert parse(json.dumps({"type": "offer", "to": "p1", "sdp": SDP})) == Relay("offer", "p1", {"sdp": SDP})
    assert parse(json.dumps({"type": "answer", "to": "p1", "sdp": SDP, "extra": 1})) == Relay(
        "answer", "p1", {"sdp": SDP}
    )
    assert parse(
        json.dumps({"type": "candidate", "to": "p1", "candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0})
    ) == Relay("candidate", "p1", {"candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0})
    # end-of-candidates: an empty candidate string
    assert parse(json.dumps({"type": "candidate", "to": "p1", "candidate": "", "sdpMid": "0"})) == Relay(
        "candidate", "p1", {"candidate": "", "sdpMid": "0", "sdpMLineIndex": None}
    )
    assert parse(json.dumps({"type": "leave"})) == Leave()
    assert parse(json.dumps({"type": "ping"})) == Ping()
    assert parse(json.dumps({"type": "ping"}).encode()) == Ping()  # bytes too
    assert error("x", "y") == {"type": "error", "code": "x", "message": "y"}


def test_parse_limits_are_inclusive():
    assert (
        parse(json.dumps({"type": "offer", "to": "p" * MAX_ID, "sdp": "v=0" + "a" * (MAX_SDP - 3)})).to
        == "p" * MAX_ID
    )
    long = "candidate:" + "1" * (MAX_CANDIDATE - 10)
    assert (
        parse(json.dumps({"type": "candidate", "to": "p", "candidate": long, "sdpMLineIndex": 1023})).body[
            "candidate"
        ]
        == long
    )


def _code(raw) -> str:
    with pytest.raises(ProtocolError) as exc:
        parse(raw)
    assert exc.value.message
    return exc.value.code


@pytest.mark.parametrize(
    "raw", ["", "{", "not json", "{'type': 'ping'}", b"\xff\xfe\x00", "[" * 100_000, '{"a":' * 50_000]
)
def test_parse_bad_json(raw):
    assert _code(raw) == "bad_json"


@pytest.mark.parametrize("value", [[], [{"type": "ping"}], "ping", 1, None, True])
def test_parse_not_an_object(value):
    assert _code(json.dumps(value)) == "bad_message"


@pytest.mark.parametrize(
    "msg",
    [
        {},
        {"type": None},
        {"type": 1},
        {"type": ["ping"]},
        {"type": {"a": 1}},
        {"type": "pong"},
        {"type": "joined"},
        {"type": "error"},
        {"type": "JOIN"},
        {"type": "peer-left"},
        {"type": "x" * 10_000},
    ],
)
def test_parse_unknown_type(msg):
    assert _code(json.dumps(msg)) == "unknown_type"


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "join"},
        {"type": "join", "token": ""},
        {"type": "join", "token": 5},
        {"type": "join", "token": None},
        {"type": "join", "token": "t" * 8193},
        {"type": "join", "token": ["t"]},
        {"type": "resume"},
        {"type": "resume", "resume": ""},
        {"type": "resume", "resume": "s" * 129},
        {"type": "resume", "secret": "s"},
        {"type": "resume", "resume": {"s": 1}},
        {"type": "offer", "sdp": SDP},
        {"type": "offer", "to": "", "sdp": SDP},
        {"type": "answer", "to": 3, "sdp": SDP},
        {"type": "offer", "to": "p" * (MAX_ID + 1), "sdp": SDP},
        {"type": "offer", "to": "p"},
        {"type": "answer", "to": "p", "sdp": ""},
        {"type": "offer", "to": "p", "sdp": 1},
        {"type": "offer", "to": "p", "sdp": "v=0" + "a" * MAX_SDP},
        {"type": "candidate", "candidate": CAND},
        {"type": "candidate", "to": None, "candidate": CAND},
    ],
)
def test_parse_bad_message(msg):
    assert _code(json.dumps(msg)) == "bad_message"


@pytest.mark.parametrize("sdp", ["x", " v=0", "o=- 1 2 IN IP4 1.2.3.4", "V=0", "\nv=0"])
def test_parse_bad_sdp(sdp):
    assert _code(json.dumps({"type": "offer", "to": "p", "sdp": sdp})) == "bad_sdp"
    assert _code(json.dumps({"type": "answer", "to": "p", "sdp": sdp})) == "bad_sdp"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"candidate": None},
        {"candidate": 5},
        {"candidate": "1 1 udp 1 1.2.3.4 5 typ host"},
        {"candidate": "candidate:" + "1" * MAX_CANDIDATE},
        {"candidate": ["candidate:1"]},
        {"candidate": CAND, "sdpMid": 0},
        {"candidate": CAND, "sdpMid": "m" * (MAX_ID + 1)},
        {"candidate": CAND, "sdpMLineIndex": -1},
        {"candidate": CAND, "sdpMLineIndex": 1024},
        {"candidate": CAND, "sdpMLineIndex": "0"},
        {"candidate": CAND, "sdpMLineIndex": True},
        {"candidate": CAND, "sdpMLineIndex": 0.5},
    ],
)
def test_parse_bad_candidate(fields):
    assert _code(json.dumps({"type": "candidate", "to": "p", **fields})) == "bad_candidate"
