"""What creating a consult writes: the consult once, the events of its transaction in one statement."""

import collections
import contextlib
import uuid

from sqlalchemy import event, select

from consults.models import Consult, Offer
from events.models import Event
from tests.live import put_on_call

BODY = {
    "specialty": "cardiology",
    "urgency": "emergent",
    "mode": "async",
    "question": "Chest pain, ST elevation in V2-V4?",
    "patient_ref": "P-1",
}


@contextlib.contextmanager
def statements(engine):
    """Counts of (verb, table) of the SQL run on `engine` meanwhile."""
    seen: collections.Counter = collections.Counter()

    def count(conn, cursor, statement, params, context, executemany):
        words = statement.split()
        table = words[2] if words[0] == "INSERT" else words[1]
        seen[(words[0], table.strip('"'))] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_consult_is_inserted_once_and_its_events_in_one_statement(app, client, world):
    specialists = [world.users["a-specialist"]]
    await put_on_call(
        app.state.sessionmaker, org_id=world.orgs["A"], user_ids=specialists, specialty="cardiology"
    )
    with statements(app.state.engine) as seen:
        resp = await client.post("/api/v1/consults", json=BODY, headers=await world.headers("a-clinician"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "offered"
    assert seen[("INSERT", "consults")] == 1
    assert seen[("INSERT", "events")] == 1  # the offer, the status, the queue: one statement
    async with app.state.sessionmaker() as session:
        stored = (
            await session.execute(select(Consult).where(Consult.id == uuid.UUID(resp.json()["id"])))
        ).scalar_one()
        offers = (
            await session.execute(select(Offer.specialist_id).where(Offer.consult_id == stored.id))
        ).all()
        events = (await session.execute(select(Event.type).where(Event.consult_id == stored.id))).scalars()
        assert stored.status == "offered" and stored.step_seq == 1
        assert {o.specialist_id for o in offers} == set(specialists)
        assert sorted(events) == ["consult.status", "offer.created", "queue.changed"]
