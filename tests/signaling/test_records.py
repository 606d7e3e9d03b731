"""Attendance is written after the fact, in batches, with the times things happened; a change that
cannot be written costs no other change its record."""

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from api.db import make_engine, make_sessionmaker
from audit.models import AuditEvent
from consults.models import Consult
from events.models import Event
from signaling.calls.records import Joined, Left, RecordWriter, record_attendance
from signaling.models import Attendance, Call
from tests.live import accepted_consult

BODY = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}


@contextlib.asynccontextmanager
async def counted_writer(app):
    """A writer on an engine of its own, whose commits are counted: the app's own background work (the
    event log, the audit sealer) commits on the app's engine, on its own clock."""
    engine = make_engine(str(app.state.engine.url.render_as_string(hide_password=False)))
    commits = [0]
    event.listen(engine.sync_engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    writer = RecordWriter(make_sessionmaker(engine), delay=0.2)
    writer.start()
    try:
        yield writer, commits
    finally:
        await engine.dispose()


async def a_call(app, world) -> tuple[uuid.UUID, list[Joined | Left]]:
    """Two peers join and leave an accepted consult's call; times a second apart, from an hour ago."""
    consult = uuid.UUID((await accepted_consult(app, world, BODY))["id"])
    t = datetime.now(UTC) - timedelta(hours=1)
    a, b = world.users["a-clinician"], world.users["b-specialist"]
    return consult, [
        Joined(consult, a, "pa", t),
        Joined(consult, b, "pb", t + timedelta(seconds=1)),
        Left(consult, "pb", t + timedelta(seconds=5)),
        Left(consult, "pa", t + timedelta(seconds=7)),
    ]


async def written(app, consult: uuid.UUID) -> tuple[list[Call], list[Attendance], Consult, list[str]]:
    async with app.state.sessionmaker() as s:
        calls = list((await s.execute(select(Call).where(Call.consult_id == consult))).scalars())
        rows = list((await s.execute(select(Attendance).order_by(Attendance.joined_at))).scalars())
        events = list(
            (
                await s.execute(
                    select(Event.type)
                    .where(Event.consult_id == consult)
                    .where(Event.type.like("call.%"))
                    .order_by(Event.id)
                )
            ).scalars()
        )
        return calls, rows, await s.get(Consult, consult), events


async def test_a_burst_of_changes_is_one_transaction_with_the_times_they_happened(app, world):
    consult, changes = await a_call(app, world)
    async with counted_writer(app) as (writer, commits):
        for change in changes:
            writer.add(change)
        await writer.stop()
    assert commits[0] == 1
    [call], rows, row, events = await written(app, consult)
    assert [(r.peer_id, r.joined_at, r.left_at) for r in rows] == [
        ("pa", changes[0].at, changes[3].at),
        ("pb", changes[1].at, changes[2].at),
    ]
    assert (call.started_at, call.ended_at) == (changes[0].at, changes[3].at)
    assert (
        row.status == "in_session" and row.first_response_at == changes[1].at
    )  # b-specialist is the assignee
    assert events == ["call.started"] * 2 + ["call.ended"] * 2  # each to both participants


async def test_a_change_that_cannot_be_written_loses_no_other(app, world):
    consult, changes = await a_call(app, world)
    poison = Joined(uuid.uuid4(), world.users["a-clinician"], "ghost")  # no such consult
    async with counted_writer(app) as (writer, commits):
        for change in changes[:2] + [poison] + changes[2:]:
            writer.add(change)
        await writer.stop()
    assert commits[0] == 4  # the batch failed, then each change alone: the four good ones committed
    [call], rows, _, events = await written(app, consult)
    assert [r.peer_id for r in rows] == ["pa", "pb"] and all(r.left_at for r in rows) and call.ended_at
    assert len(events) == 4


async def records(world, consult: uuid.UUID, who: str):
    return await world.client.get(f"/api/v1/consults/{consult}/calls", headers=await world.headers(who))


async def test_the_records_route_gives_each_call_with_who_attended_for_how_long(app, world):
    consult, changes = await a_call(app, world)
    async with app.state.sessionmaker() as session:
        await record_attendance(session, changes=changes[:3])  # a-clinician is still in the call
    resp = await records(world, consult, "a-clinician")
    assert resp.status_code == 200, resp.text
    [call] = resp.json()["items"]
    assert call["consult_id"] == str(consult) and call["ended_at"] is None
    assert datetime.fromisoformat(call["started_at"]) == changes[0].at
    still, gone = call["attendance"]
    assert (gone["user_id"], gone["seconds"], gone["display_name"]) == (
        str(world.users["b-specialist"]),
        4.0,
        "b-specialist",
    )
    assert datetime.fromisoformat(gone["left_at"]) == changes[2].at
    assert still["left_at"] is None and 3590 < still["seconds"] < 3700  # an hour so far
    async with app.state.sessionmaker() as s:
        reads = (await s.execute(select(AuditEvent).where(AuditEvent.action == "call.read"))).scalars()
        assert [(r.actor_id, r.resource_id) for r in reads] == [
            (str(world.users["a-clinician"]), str(consult))
        ]


async def test_the_records_are_for_those_who_see_the_whole_consult_while_an_agreement_lets_them(app, world):
    consult, changes = await a_call(app, world)
    async with app.state.sessionmaker() as session:
        await record_attendance(session, changes=changes)
    for who in ("a-coordinator", "b-specialist"):
        assert (await records(world, consult, who)).status_code == 200, who
    for who in ("b-coordinator", "c-clinician", "a-specialist"):
        resp = await records(world, consult, who)
        assert (resp.status_code, resp.json()["code"]) == (404, "not_found"), who
    suspended = await world.client.post(
        f"/api/v1/agreements/{world.agreement_id}/suspend", headers=await world.headers("a-org_admin")
    )
    assert suspended.status_code == 200, suspended.text
    assert (await records(world, consult, "b-specialist")).status_code == 404  # decided now, not then
    assert (await records(world, consult, "a-clinician")).status_code == 200
