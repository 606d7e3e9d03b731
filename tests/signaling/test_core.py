"""The signaling core's decisions as plain code (signaling.core.admission, signaling.core.views): join
admission and the fabric's views of remote peers, with no socket, Redis, database or clock."""

import json

import pytest

from signaling.core.admission import (
    CallGrant,
    CloseOrders,
    Verdict,
    admitted_at_once,
    check_connections,
    settled,
)
from signaling.core.messages import ProtocolError, joined
from signaling.core.rooms import Limits, Rooms, Send, held
from signaling.core.views import Views

GRANT = CallGrant("u1", "o1", "consult-1", "c1", "jti", iat=100, exp=400)
ME, OTHER = "node-a", "node-b"


# ---- admission ----


def test_a_user_at_the_connection_limit_is_refused():
    check_connections(1, 2)
    with pytest.raises(ProtocolError) as exc:
        check_connections(2, 2)
    assert exc.value.code == "too_many_connections"


def test_close_orders_are_remembered_for_the_horizon_by_room_and_by_user():
    orders = CloseOrders(horizon=60)
    assert orders.quiet(GRANT, now=1000)
    orders.room_closed("consult-2", now=1000)  # another room: no bearing on this grant
    orders.user_closed("u2", now=1000)
    assert orders.quiet(GRANT, now=1001)
    orders.user_closed("u1", now=1000)
    assert "user:u1" in orders
    assert not orders.quiet(GRANT, now=1059) and orders.quiet(GRANT, now=1060.5)
    orders.room_closed("consult-1", now=2000)
    assert orders.since(GRANT, 2000) and not orders.since(GRANT, 2000.1)
    orders.prune(now=2030)
    assert "user:u1" not in orders and "room:consult-1" in orders


def test_only_a_fresh_token_with_no_close_order_meanwhile_skips_the_database():
    orders = CloseOrders(horizon=60)
    assert admitted_at_once(Verdict.FRESH, orders, GRANT, now=10)
    assert not admitted_at_once(Verdict.RECHECK, orders, GRANT, now=10)
    orders.room_closed("consult-1", now=5)  # came while the token was being spent
    assert not admitted_at_once(Verdict.FRESH, orders, GRANT, now=10)


def test_the_databases_yes_holds_unless_an_order_came_after_it_was_asked():
    orders = CloseOrders(horizon=60)
    orders.room_closed("consult-1", now=5)
    assert settled(orders, GRANT, asked=6)
    orders.user_closed("u1", now=7)  # raced the query asked at 6: ask again
    assert not settled(orders, GRANT, asked=6) and settled(orders, GRANT, asked=7.5)


def test_the_joined_answer_names_the_others_local_first_and_says_when_it_is_a_resume():
    r = Rooms(Limits(max_peers=4))
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    b, _ = r.join(room="x", user_id="u2", org_id="o")
    remote = [{"peer_id": "far", "user_id": "u3"}]
    answer = joined(peer_id=b.peer_id, secret=b.secret, room="x", peers=r.others(b, remote), ice_servers=[])
    assert answer == {
        "type": "joined",
        "peer_id": b.peer_id,
        "resume": b.secret,
        "room": "x",
        "peers": [{**a.public(), "state": "connected"}, {**remote[0], "state": "connected"}],
        "ice_servers": [],
    }
    again = joined(peer_id=b.peer_id, secret=b.secret, room="x", peers=[], ice_servers=[], resumed=True)
    assert list(again) == ["type", "peer_id", "resume", "room", "peers", "resumed", "ice_servers"]


# ---- the fabric's views ----


def entry(peer_id: str, node: str = OTHER, user_id: str | None = None) -> dict:
    return {"peer_id": peer_id, "user_id": user_id or f"user-{peer_id}", "node": node}


def event(kind: str, seq: int, peer: dict, room: str = "r") -> dict:
    return {"room": room, "seq": seq, "event": kind, "peer": peer}


def seated(views: Views, peer_id: str = "me1", seq: int = 10, members: list[dict] | None = None) -> list:
    views.enter("r", {"peer_id": peer_id, "user_id": "u-me"})
    return views.joined("r", peer_id, [], seq, members or [], now=0.0)


def test_a_joining_peer_hears_nothing_until_its_join_is_done_then_the_difference():
    views = Views(ME, absent_after=10)
    got = views.enter("r", {"peer_id": "me1", "user_id": "u-me"})
    assert json.loads(got) == {"peer_id": "me1", "user_id": "u-me", "node": ME}
    assert views.event(event("peer-joined", 11, entry("p1"))) == []  # kept, not yet told
    assert views.refreshing() == []  # the heartbeat leaves a pending join to its own script
    sends = views.joined("r", "me1", [], 10, [entry("p2")], now=0.0)
    assert sorted(m["peer_id"] for _, _, m in sends) == ["p1", "p2"]
    assert {(room, to, m["type"]) for room, to, m in sends} == {("r", "me1", "peer-joined")}
    assert [room for room, _, _ in views.refreshing()] == ["r"]


def test_events_apply_once_newest_first_wins_and_our_own_are_ignored():
    views = Views(ME, absent_after=10)
    seated(views)
    assert views.event(event("peer-joined", 12, entry("p1"))) == [
        ("r", "me1", {"type": "peer-joined", "peer_id": "p1", "user_id": "user-p1"})
    ]
    assert views.event(event("peer-joined", 12, entry("p1"))) == []  # a duplicate
    assert views.event(event("peer-left", 11, entry("p1"))) == []  # older news
    assert views.event(event("peer-joined", 13, entry("mine", node=ME))) == []
    assert views.event(event("peer-joined", 14, entry("p9"), room="elsewhere")) == []  # no view there
    assert views.event(event("peer-left", 15, entry("p1"))) == [
        ("r", "me1", {"type": "peer-left", "peer_id": "p1", "user_id": "user-p1"})
    ]


def test_a_snapshot_drops_a_missing_member_only_after_absent_after():
    views = Views(ME, absent_after=10)
    seated(views, members=[entry("p1")])
    assert views.snapshot("r", views.rooms["r"], 20, [], now=100.0) == []  # absent: not gone yet
    assert views.snapshot("r", views.rooms["r"], 21, [], now=105.0) == []
    left = views.snapshot("r", views.rooms["r"], 22, [], now=110.0)
    assert left == [("r", "me1", {"type": "peer-left", "peer_id": "p1", "user_id": "user-p1"})]


def test_a_missing_member_that_comes_back_was_never_gone():
    views = Views(ME, absent_after=10)
    seated(views, members=[entry("p1")])
    views.snapshot("r", views.rooms["r"], 20, [], now=100.0)
    assert views.snapshot("r", views.rooms["r"], 21, [entry("p1")], now=109.0) == []
    assert views.snapshot("r", views.rooms["r"], 22, [], now=112.0) == []  # its absence starts again


def test_a_departure_event_confirms_what_a_snapshot_left_pending():
    views = Views(ME, absent_after=10)
    seated(views, members=[entry("p1")])
    views.snapshot("r", views.rooms["r"], 20, [], now=100.0)
    assert views.event(event("peer-joined", 19, entry("p2"))) == []  # the snapshot at 20 saw no p2
    assert views.event(event("peer-left", 19, entry("p1"))) == [
        ("r", "me1", {"type": "peer-left", "peer_id": "p1", "user_id": "user-p1"})
    ]


def test_an_older_snapshot_teaches_nothing_and_a_replaced_view_takes_none():
    views = Views(ME, absent_after=10)
    seated(views, seq=30, members=[entry("p1")])
    view = views.rooms["r"]
    assert views.snapshot("r", view, 29, [], now=1000.0) == []
    assert views.rooms["r"].members == {"p1": {"peer_id": "p1", "user_id": "user-p1"}}
    views.forget("r", "me1")
    assert "r" not in views.rooms  # no local peer left: no view
    seated(views, seq=31)
    assert views.snapshot("r", view, 40, [entry("p5")], now=0.0) == []  # the old view's answer


def test_a_peer_that_left_before_its_join_answered_is_not_seated():
    views = Views(ME, absent_after=10)
    views.enter("r", {"peer_id": "me1", "user_id": "u"})
    views.forget("r", "me1")
    assert views.joined("r", "me1", [], 5, [entry("p1")], now=0.0) is None


def test_a_peer_is_told_only_what_it_was_not_told_at_join():
    views = Views(ME, absent_after=10)
    views.enter("r", {"peer_id": "me1", "user_id": "u"})
    told = [{"peer_id": "p1", "user_id": "user-p1"}, {"peer_id": "gone", "user_id": "user-gone"}]
    sends = views.joined("r", "me1", told, 5, [entry("p1"), entry("p2")], now=0.0)
    assert sorted((m["type"], m["peer_id"]) for _, _, m in sends) == [
        ("peer-joined", "p2"),
        ("peer-left", "gone"),
    ]


# ---- messages from other nodes ----


def test_a_peer_being_admitted_gets_what_other_nodes_sent_it_meanwhile_as_its_backlog():
    r = Rooms(Limits(max_peers=4, buffer_messages=2))
    r.expect("newcomer")
    assert r.receive("x", "newcomer", {"n": 1}) == ([], True)
    assert r.receive("x", "newcomer", {"n": 2}) == ([], True)
    assert r.receive("x", "newcomer", {"n": 3}) == ([], True)  # past the buffer: dropped, still ours
    assert r.receive("x", "stranger", {"n": 4}) == ([], False)  # not this node's: the sender hears it
    assert r.arrived("newcomer") == [{"n": 1}, {"n": 2}]
    assert r.receive("x", "newcomer", {"n": 5}) == ([], False)


def test_a_message_from_another_node_reaches_a_local_peer_or_waits_while_it_is_away():
    r = Rooms(Limits(max_peers=4, buffer_messages=1))
    a, _ = r.join(room="x", user_id="u1", org_id="o")
    assert r.receive("x", a.peer_id, {"n": 1}) == ([Send(a.peer_id, {"n": 1})], True)
    r.detach(a, now=0.0)
    assert r.receive("x", a.peer_id, {"n": 2}) == ([], True)
    assert r.receive("x", a.peer_id, {"n": 3}) == ([], True)  # its buffer is full: dropped, no error
    assert a.buffer == [{"n": 2}]
    relayed = {"type": "candidate", "from": "far", "candidate": ""}
    a.buffer.clear()
    assert r.receive("x", a.peer_id, relayed) == (
        [Send("far", held(a.peer_id, "candidate"))],
        True,
    )  # told back


def test_a_peers_role_and_name_cross_nodes_but_the_fabrics_own_fields_do_not():
    views = Views(ME, absent_after=10)
    described = {"peer_id": "me1", "user_id": "u-me", "role": "interpreter", "name": "Ana Ruiz"}
    assert json.loads(views.enter("r", described)) == described | {"node": ME}  # what other nodes read
    views.joined("r", "me1", [], 10, [], now=0.0)
    far = {
        "peer_id": "p1",
        "user_id": "u1",
        "role": "assignee",
        "name": "Dr Kim",
        "node": OTHER,
        "expires": 9,
    }
    assert views.event(event("peer-joined", 11, far)) == [
        (
            "r",
            "me1",
            {"type": "peer-joined", "peer_id": "p1", "user_id": "u1", "role": "assignee", "name": "Dr Kim"},
        )
    ]
    assert views.rooms["r"].members["p1"] == {
        "peer_id": "p1",
        "user_id": "u1",
        "role": "assignee",
        "name": "Dr Kim",
    }
