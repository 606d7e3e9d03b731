"""Calls end when what allows them ends (consult cancelled or completed, user disabled, agreement
revoked), and every call is recorded: start, end, who attended from when to when, and its events."""

import asyncio
import time
import uuid

from sqlalchemy import select

from consults.models import Consult
from events.models import Event
from signaling.models import Attendance, Call
from tests.live import put_on_call
from tests.signaling.test_protocol import CONSULT, Sock, abort, heard, live, relays, settings  # noqa: F401 (live: fixture)


async def call_closed(s: Sock) -> None:
    """The server ends this connection with `call_closed` and close code 1000 (peer-left of others may come first)."""
    got, code = await s.closed()
    assert got and got[-1]["type"] == "error" and got[-1]["code"] == "call_closed", got
    assert got[-1]["message"]
    assert {m["type"] for m in got[:-1]} <= {"peer-left"}, got
    assert code == 1000


async def refused_join(live, token: str, code: str = "call_closed") -> None:
    await live.refused(code, {"type": "join", "token": token})


async def eventually(check, timeout: float = 5):
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def calls_of(live, consult: dict) -> list[Call]:
    async with live.app.state.sessionmaker() as s:
        return list(
            (
                await s.execute(
                    select(Call).where(Call.consult_id == uuid.UUID(consult["id"])).order_by(Call.started_at)
                )
            ).scalars()
        )


async def attendance_of(live, call: Call) -> list[Attendance]:
    async with live.app.state.sessionmaker() as s:
        return list(
            (
                await s.execute(
                    select(Attendance).where(Attendance.call_id == call.id).order_by(Attendance.joined_at)
                )
            ).scalars()
        )


async def events_of(live, consult: dict, kind: str) -> list[Event]:
    async with live.app.state.sessionmaker() as s:
        return list(
            (
                await s.execute(
                    select(Event)
                    .where(Event.consult_id == uuid.UUID(consult["id"]), Event.type == kind)
                    .order_by(Event.id)
                )
            ).scalars()
        )


async def status_of(live, consult: dict) -> str:
    async with live.app.state.sessionmaker() as s:
        status = (await s.get(Consult, uuid.UUID(consult["id"]))).status
        return getattr(status, "value", status)


async def ended(live, consult: dict) -> list[Call]:
    calls = await calls_of(live, consult)
    return calls if calls and all(c.ended_at is not None for c in calls) else []


async def two_calls(live):
    """The fixture's consult X with a-clinician and b-specialist in its call, and a second consult Y likewise."""
    a, b = await live.pair()
    other = await live.new_consult()
    ya, yb = await live.pair(other)
    return (a, b), other, (ya, yb)


async def test_cancelling_the_consult_closes_its_call(live):
    (a, b), other, (ya, yb) = await two_calls(live)
    spare = await live.token("b-specialist")  # issued before the cancel
    resp = await live.w.client.post(
        f"/api/v1/consults/{live.consult['id']}/cancel", headers=await live.w.headers("a-clinician")
    )
    assert resp.status_code == 200, resp.text
    await call_closed(a)
    await call_closed(b)
    await refused_join(live, spare)
    resp = await live.w.client.post(
        f"/api/v1/consults/{live.consult['id']}/call-token", headers=await live.w.headers("a-clinician")
    )
    assert resp.status_code == 409
    await relays(ya, yb)  # the other consult's call goes on
    [call] = await eventually(lambda: ended(live, live.consult))
    assert all(r.left_at is not None for r in await attendance_of(live, call))
    assert await status_of(live, live.consult) == "cancelled"


async def test_completing_the_consult_closes_its_call(live):
    (a, b), other, (ya, yb) = await two_calls(live)
    resp = await live.w.client.post(
        f"/api/v1/consults/{live.consult['id']}/complete",
        headers=await live.w.headers("b-specialist"),
        json={"recommendation": "Splint and observe.", "disposition": "manage_locally"},
    )
    assert resp.status_code == 200, resp.text
    await call_closed(a)
    await call_closed(b)
    await relays(ya, yb)
    [call] = await eventually(lambda: ended(live, live.consult))
    assert len(await attendance_of(live, call)) == 2
    assert await status_of(live, live.consult) == "completed"
    assert await status_of(live, other) == "in_session"


async def test_disabling_a_user_closes_their_connections(live):
    (a, b), other, (ya, yb) = await two_calls(live)
    spare = await live.token("b-specialist")  # issued before the account is disabled
    user = live.w.users["b-specialist"]
    resp = await live.w.client.patch(
        f"/api/v1/orgs/{live.w.orgs['B']}/users/{user}",
        json={"is_active": False},
        headers=await live.w.headers("b-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    await call_closed(b)
    await call_closed(yb)
    for s in (a, ya):  # the others stay, and hear that the disabled user left
        assert (await s.recv()) == {
            "type": "peer-left",
            "peer_id": (b if s is a else yb).peer_id,
            "user_id": str(user),
            "role": "assignee",
            "name": "b-specialist",
        }
        await s.alive()
    await refused_join(live, spare)  # a call token from before does not bring them back
    await live.refused(
        "resume_failed", {"type": "resume", "resume": b.joined["resume"]}
    )  # nor its resume secret
    [call] = await eventually(lambda: calls_of(live, live.consult))
    rows = await eventually(lambda: _left(live, call, user))
    assert rows and call.ended_at is None  # a is still in the call


async def test_signing_out_closes_the_calls_of_that_sign_in(live):
    (a, b), other, (ya, yb) = await two_calls(live)  # b-specialist joined both with one sign-in's tokens
    elsewhere = await live.w.login("b-specialist")  # a second sign-in of the same user
    resp = await live.w.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {await live.w.token('b-specialist')}"}
    )
    assert resp.status_code in (200, 204), resp.text
    await call_closed(b)
    await call_closed(yb)
    for s in (a, ya):  # the other side stays, and hears that the signed-out peer left
        assert (await s.recv())["type"] == "peer-left"
        await s.alive()
    headers = {"Authorization": f"Bearer {elsewhere['access_token']}"}
    resp = await live.w.client.post(f"/api/v1/consults/{live.consult['id']}/call-token", headers=headers)
    assert resp.status_code == 200, resp.text  # the user's other sign-in still calls


async def _left(live, call, user_id):
    rows = [r for r in await attendance_of(live, call) if r.user_id == user_id]
    return rows if rows and all(r.left_at is not None for r in rows) else None


async def test_revoking_the_agreement_closes_cross_org_calls(live):
    """A→B agreement: the consult assigned to B's specialist loses its call; A's own consult keeps its call."""
    a, b = await live.pair()
    await put_on_call(
        live.app.state.sessionmaker,
        org_id=live.w.orgs["A"],
        user_ids=[live.w.users["a-specialist"]],
        specialty="burns",
    )
    c = live.w.client
    own = (
        await c.post(
            "/api/v1/consults",
            json=CONSULT | {"specialty": "burns"},
            headers=await live.w.headers("a-clinician"),
        )
    ).json()
    resp = await c.post(f"/api/v1/consults/{own['id']}/accept", headers=await live.w.headers("a-specialist"))
    assert resp.status_code == 200, resp.text
    oa = await live.join("a-clinician", own)
    ob = await live.join("a-specialist", own)
    await heard(oa, kind="peer-joined")
    spare = await live.token("b-specialist")
    resp = await c.post(
        f"/api/v1/agreements/{live.w.agreement_id}/revoke", headers=await live.w.headers("a-org_admin")
    )
    assert resp.status_code == 200, resp.text
    await call_closed(a)
    await call_closed(b)
    await relays(oa, ob)  # within one org, no agreement is needed
    await refused_join(live, spare)
    resp = await c.post(
        f"/api/v1/consults/{live.consult['id']}/call-token", headers=await live.w.headers("b-specialist")
    )
    assert resp.status_code in (403, 404, 409), (
        resp.text
    )  # and no new token brings B back across the boundary
    await eventually(lambda: ended(live, live.consult))


async def test_call_is_recorded(live):
    a_id, b_id = live.w.users["a-clinician"], live.w.users["b-specialist"]
    assert await status_of(live, live.consult) == "accepted"
    a = await live.join("a-clinician")
    assert await eventually(lambda: _status_is(live, "in_session"))
    b = await live.join("b-specialist")
    await heard(a, kind="peer-joined")
    await relays(a, b)
    await asyncio.sleep(0.3)
    await b.send(type="leave")
    await heard(a, kind="peer-left")
    [call] = await calls_of(live, live.consult)
    await eventually(lambda: _left(live, call, b_id))  # b's departure is on record before a leaves
    await a.send(type="leave")
    assert (await a.closed())[1] == 1000
    [call] = await eventually(lambda: ended(live, live.consult))
    assert call.room == f"consult-{live.consult['id']}"
    rows = await attendance_of(live, call)
    assert [(r.user_id, r.peer_id) for r in rows] == [(a_id, a.peer_id), (b_id, b.peer_id)]
    ra, rb = rows
    assert call.started_at <= ra.joined_at < rb.joined_at < rb.left_at < ra.left_at <= call.ended_at
    assert (rb.left_at - rb.joined_at).total_seconds() >= 0.3
    started = await events_of(live, live.consult, "call.started")
    stopped = await events_of(live, live.consult, "call.ended")
    assert sorted(e.channel for e in started) == sorted(f"u:{u}" for u in (a_id, b_id))
    assert sorted(e.channel for e in stopped) == sorted(f"u:{u}" for u in (a_id, b_id))
    assert {e.data["call_id"] for e in started + stopped} == {str(call.id)}
    assert all(e.data["seconds"] >= 0.3 for e in stopped)
    assert await status_of(live, live.consult) == "in_session"
    # a later contact on the same consult is a second call
    again = await live.join("b-specialist")
    await again.send(type="leave")
    assert (await again.closed())[1] == 1000
    calls = await eventually(lambda: _n_ended(live, 2))
    assert calls[1].id != call.id and len(await attendance_of(live, calls[1])) == 1
    assert len(await events_of(live, live.consult, "call.started")) == 4


async def _status_is(live, status):
    return await status_of(live, live.consult) == status


async def _attended(live, call, n):
    rows = await attendance_of(live, call)
    return rows if len(rows) == n else None


async def _n_ended(live, n):
    calls = await calls_of(live, live.consult)
    return calls if len(calls) == n and all(c.ended_at for c in calls) else None


@settings(signaling_grace_seconds=0.6)
async def test_resume_keeps_attendance_and_expiry_ends_it(live):
    a, b = await live.pair()
    abort(b)
    await live.detached(b)
    b2 = await live.connect()
    assert (await b2.ask(type="resume", resume=b.joined["resume"]))["peer_id"] == b.peer_id
    await a.quiet(0.8)  # longer than the grace period: resumed in time, nobody left
    [call] = await eventually(lambda: calls_of(live, live.consult))
    rows = await eventually(lambda: _attended(live, call, 2))
    assert all(r.left_at is None for r in rows)  # one attendance across the resume
    abort(b2)  # now gone for good
    lost_at = time.monotonic()
    assert (await a.recv(4))["type"] == "peer-left"
    assert time.monotonic() - lost_at >= 0.5
    rows = await eventually(lambda: _left(live, call, live.w.users["b-specialist"]))
    assert len(rows) == 1
    assert (await calls_of(live, live.consult))[0].ended_at is None
    await a.send(type="leave")
    await eventually(lambda: ended(live, live.consult))
