"""The consult state machine: every event from every status, allowed or refused (409 problem+json),
what a move stamps and whom it releases, and that nothing but consults.lifecycle writes a status."""

import ast
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql

from api.errors import install_error_handlers
from consults.exceptions import InvalidTransition
from consults.lifecycle import RULES, Event, guarded, transition
from consults.models import Consult, EscalationStep, Offer, OfferStatus, Status, StepStatus
from tests.consults.conftest import CONSULT
from tests.test_layers import ROOT, UNLAYERED, packages

S = Status
ROUTING = {S.requested, S.offered, S.unassigned}
HELD = {S.accepted, S.in_session}
# Written out again rather than read from RULES: SPEC.md's lifecycle, as this test holds it.
EXPECTED: dict[Event, tuple[set[Status], Status]] = {
    Event.offer: (ROUTING, S.offered),
    Event.exhaust: (ROUTING, S.unassigned),
    Event.accept: ({S.offered}, S.accepted),
    Event.assign: (ROUTING | HELD, S.accepted),
    Event.join_call: ({S.accepted}, S.in_session),
    Event.complete: (HELD, S.completed),
    Event.cancel: (ROUTING | HELD, S.cancelled),
}
PAIRS = list(itertools.product(Event, Status))
ALLOWED = [(e, s) for e, s in PAIRS if s in EXPECTED[e][0]]
REFUSED = [(e, s) for e, s in PAIRS if s not in EXPECTED[e][0]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOON = T0 + timedelta(minutes=5)


def a_consult(status: Status, **fields) -> Consult:
    body = CONSULT | {
        "org_id": uuid.uuid4(),
        "requester_id": uuid.uuid4(),
        "created_at": T0,
        "updated_at": T0,
    }
    return Consult(**body, status=status, **fields)


def held_by(status: Status) -> dict:
    return {"assigned_to": uuid.uuid4(), "assigned_org_id": uuid.uuid4()} if status in HELD else {}


def move(consult: Consult, event: Event, at: datetime = SOON):
    assignee = (uuid.uuid4(), uuid.uuid4()) if event in (Event.accept, Event.assign) else None
    outcome = ("Transfer today", "transfer") if event is Event.complete else None
    return transition(consult, event, at=at, level=2, assignee=assignee, outcome=outcome)


def test_the_table_is_the_spec_and_covers_every_event():
    assert {e: (set(r.sources), r.target) for e, r in RULES.items()} == EXPECTED
    assert len(ALLOWED) + len(REFUSED) == len(Event) * len(Status) and ALLOWED and REFUSED


@pytest.mark.parametrize(("event", "status"), ALLOWED)
def test_an_allowed_move_lands_on_its_target(event, status):
    consult = a_consult(status, **held_by(status))
    change = move(consult, event)
    assert consult.status is EXPECTED[event][1] and consult.updated_at == SOON
    assert change.source is status and change.event is event
    assert change.moved == (status != EXPECTED[event][1])


@pytest.mark.parametrize(("event", "status"), REFUSED)
def test_a_refused_move_raises_and_changes_nothing(event, status):
    consult = a_consult(status, **held_by(status))
    before = consult.model_dump()
    with pytest.raises(InvalidTransition) as raised:
        move(consult, event)
    assert raised.value.status == 409 and raised.value.code == "invalid_transition"
    assert raised.value.extra == {"current_status": status}
    assert consult.model_dump() == before


async def test_every_refused_move_is_a_409_problem_with_the_current_status():
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/move/{event}/{status}")
    async def _move(event: Event, status: Status) -> dict:
        move(a_consult(status, **held_by(status)), event)
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for event, status in REFUSED:
            resp = await client.post(f"/move/{event}/{status}")
            assert resp.status_code == 409, (event, status, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            body = resp.json()
            assert body["code"] == "invalid_transition" and body["current_status"] == status
            assert body["detail"] == f"The consult is {status}"
        assert (await client.post(f"/move/cancel/{S.offered}")).status_code == 200


def test_milestones_are_stamped_once():
    consult = a_consult(S.requested)
    move(consult, Event.offer, T0 + timedelta(seconds=1))
    later = move(consult, Event.offer, T0 + timedelta(seconds=9))
    assert consult.first_offered_at == T0 + timedelta(seconds=1) and consult.level == 2
    assert not later.moved and consult.updated_at == T0 + timedelta(seconds=9)
    move(consult, Event.assign, T0 + timedelta(seconds=20))
    move(consult, Event.assign, T0 + timedelta(seconds=30))  # a reassignment keeps the first accept
    assert consult.accepted_at == T0 + timedelta(seconds=20)
    consult.first_response_at = T0 + timedelta(seconds=40)
    move(consult, Event.complete, T0 + timedelta(seconds=50))
    assert consult.completed_at == T0 + timedelta(seconds=50)
    assert consult.first_response_at == T0 + timedelta(seconds=40)  # the earlier response stands
    assert (consult.recommendation, consult.disposition) == ("Transfer today", "transfer")


def test_completing_without_an_earlier_response_is_the_first_response():
    consult = a_consult(S.accepted, **held_by(S.accepted))
    move(consult, Event.complete)
    assert consult.first_response_at == SOON == consult.completed_at
    cancelled = a_consult(S.offered)
    move(cancelled, Event.cancel)
    assert cancelled.cancelled_at == SOON and cancelled.completed_at is None


def test_who_a_move_releases():
    holder = held_by(S.accepted)
    expected = (holder["assigned_to"], holder["assigned_org_id"])
    for event in (Event.complete, Event.cancel, Event.assign):
        assert move(a_consult(S.in_session, **holder), event).released == expected, event
    same = a_consult(S.accepted, **holder)
    assert transition(same, Event.assign, at=SOON, assignee=expected).released is None
    assert move(a_consult(S.accepted, **holder), Event.join_call).released is None
    assert move(a_consult(S.offered), Event.cancel).released is None


def test_the_raced_accept_updates_only_an_offered_consult():
    me = (uuid.uuid4(), uuid.uuid4())
    stmt = guarded(uuid.uuid4(), Event.accept, at=SOON, assignee=me, guard=exists().where(Offer.id == me[0]))
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    params = stmt.compile(dialect=postgresql.dialect()).params
    assert "consults.status IN" in sql and "coalesce(consults.accepted_at" in sql and "EXISTS" in sql
    assert [S.offered] in params.values() and params["status"] is S.accepted


# --- nothing but the state machine writes a consult's status ---------------------------------

# In consults/, every `.status` written outside these is suspect; elsewhere, a consult's.
WRITERS = {
    "consults/lifecycle.py": "the consult's",
    "consults/steps.py": "an escalation step's",
    "consults/attachments/finalize.py": "an upload's",
}


def status_writes(source: str, path: str) -> list[str]:
    """Where `source` (the file at `path`) writes a consult's status other than through lifecycle."""
    if path == "consults/lifecycle.py":
        return []
    found = []
    for node in ast.walk(ast.parse(source)):
        for target in _targets(node):
            if isinstance(target, ast.Attribute) and target.attr == "status":
                owner = ast.unparse(target.value).lower()
                if (path.startswith("consults/") and path not in WRITERS) or "consult" in owner:
                    found.append(f"{path}:{node.lineno} {ast.unparse(target)} =")
        if isinstance(node, ast.Call) and _writes_status(node):
            found.append(f"{path}:{node.lineno} {ast.unparse(node)[:80]}")
    return found


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    else:
        return []
    return [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple | ast.List) else [t])]


def _writes_status(call: ast.Call) -> bool:
    """setattr(x, "status", …), Consult(status=…), or update(Consult)….values(status=…)."""
    name = ast.unparse(call.func)
    keys = {k.arg for k in call.keywords} | {
        k.value for a in call.args if isinstance(a, ast.Dict) for k in a.keys if isinstance(k, ast.Constant)
    }
    if name == "setattr" and len(call.args) > 1 and ast.unparse(call.args[1]) == "'status'":
        return True
    if name == "Consult" or (name.endswith(".values") and "update(Consult)" in name):
        return "status" in keys
    return False


def application_files() -> dict[str, str]:
    mine = sorted(packages() - UNLAYERED)
    return {
        str(p.relative_to(ROOT)): p.read_text() for pkg in mine for p in sorted((ROOT / pkg).rglob("*.py"))
    }


def test_only_the_state_machine_writes_a_consults_status():
    files = application_files()
    assert "consults/lifecycle.py" in files and "signaling/calls/records.py" in files
    assert [w for path, src in files.items() for w in status_writes(src, path)] == []


@pytest.mark.parametrize(
    ("path", "source", "flagged"),
    [
        ("consults/offers.py", "consult.status = Status.accepted", True),
        ("consults/calls.py", "consult.status, consult.updated_at = Status.in_session, at", True),
        ("consults/worker.py", "step.status = 'done'", True),  # in consults/, only its writers
        ("consults/steps.py", "step.status, step.done_at = StepStatus.done, at", False),
        ("signaling/calls/records.py", "row.consult.status = 'in_session'", True),
        ("signaling/calls/records.py", "call.status = 'ended'", False),
        ("agreements/service.py", "agreement.status = _TO[action]", False),
        ("consults/x.py", "setattr(consult, 'status', s)", True),
        ("consults/x.py", "setattr(consult, 'level', 2)", False),
        ("consults/x.py", "Consult(org_id=o, status=Status.offered)", True),
        ("consults/x.py", "update(Consult).where(Consult.id == i).values(status=Status.accepted)", True),
        ("consults/x.py", "update(Consult).values({'status': 'accepted'})", True),
        ("consults/x.py", "update(Offer).values(status=OfferStatus.declined)", False),
        ("consults/lifecycle.py", "consult.status = Status.accepted", False),
    ],
)
def test_the_status_writer_check_sees_what_it_should(path, source, flagged):
    assert bool(status_writes(source, path)) is flagged


def test_the_check_sees_the_real_writer():
    lifecycle = (ROOT / "consults/lifecycle.py").read_text()
    assert status_writes(lifecycle, "consults/lifecycled.py")  # under another name, it is caught


# --- the enums, in the database and on the wire ----------------------------------------------


async def test_status_columns_read_back_as_their_enums(app, world):
    resp = await world.client.post(
        "/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 201, resp.text
    async with app.state.sessionmaker() as session:
        consult = await session.get(Consult, uuid.UUID(resp.json()["id"]))
        steps = (await session.execute(select(EscalationStep))).scalars().all()
        offers = (await session.execute(select(Offer))).scalars().all()
    assert isinstance(consult.status, Status) and consult.status in (S.offered, S.unassigned)
    assert steps and all(type(s.status) is StepStatus for s in steps)
    assert all(type(o.status) is OfferStatus for o in offers)


async def test_the_openapi_document_names_the_status_enums(client):
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schemas["Status"]["enum"] == [s.value for s in Status]
    assert schemas["OfferStatus"]["enum"] == [s.value for s in OfferStatus]
    assert schemas["OfferOut"]["properties"]["status"] == {"$ref": "#/components/schemas/OfferStatus"}
    assert schemas["TriageOut"]["properties"]["status"] == {"$ref": "#/components/schemas/Status"}
