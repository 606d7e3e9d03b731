"""Once an agreement is suspended or revoked, its partner org sees nothing more of the consults it
opened: on every route of the app's route table that names a consult or lists them, in event replay
and in live push, for every event type the code emits.

The routes come from `app.routes`, so a new consult route (or a new list) is checked without being
named here; a new route with a body needs one in BODIES (the test says so). The event types come
from consults.access.EVENT_VIEWS, and a source scan checks that every type the code emits is there."""

import ast
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agreements.models import Agreement
from api.db import commit
from consults.access import EVENT_VIEWS
from events.service import emit
from tests.consults.conftest import CONSULT
from tests.live import EventClient, live_world, put_on_call

API = "/api/v1"
SECRETS = (CONSULT["question"], CONSULT["patient_ref"])
# A valid body for each consult route that takes one, so that what answers is the boundary, not
# validation (422 comes before the route runs).
BODIES = {
    "POST /consults/{consult_id}/assign": lambda w: {"specialist_id": str(w.users["b-specialist"])},
    "POST /consults/{consult_id}/complete": lambda w: {
        "recommendation": "Transfer",
        "disposition": "transfer",
    },
    "POST /consults/{consult_id}/rating": lambda w: {"helpful": True},
    "POST /consults/{consult_id}/messages": lambda w: {"body": "still there?"},
    "POST /consults/{consult_id}/participants": lambda w: {"user_id": str(w.users["b-clinician"])},
    "PUT /consults/{consult_id}/reads/me": lambda w: {"message_id": str(uuid.uuid4())},
}
NO_CONTENT = "offer.withdrawn"  # the one type told without the consult's content (EVENT_VIEWS: None)
UNKNOWN = "consult.unheard-of"  # a type nobody classified: told only to those who see it all


def api_routes(app) -> list[tuple[str, str]]:
    """(method, path under /api/v1) of every HTTP route, from the OpenAPI document the app serves."""
    return sorted(
        (method.upper(), path.removeprefix(API))
        for path, ops in app.openapi()["paths"].items()
        if path.startswith(API)
        for method in ops
    )


def consult_routes(app) -> list[tuple[str, str]]:
    return [(m, p) for m, p in api_routes(app) if "{consult_id}" in p]


def listing_routes(app) -> list[str]:
    """GET routes that name nothing: lists and the caller's own views, which may hold consults."""
    return [p for m, p in api_routes(app) if m == "GET" and "{" not in p]


@pytest.fixture(params=["suspend", "revoke", "expire"])
async def closed(request, env):
    """b-specialist assigned one of A's consults (X) and offered another (Y) under the A→B agreement,
    with an events socket opened before the agreement is `suspend`ed or `revoke`d by A's admin, or
    its dates `expire`."""
    async with live_world(env) as (app, host, w):
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty=CONSULT["specialty"],
            max_concurrent=5,
        )
        clinician, spec = await w.headers("a-clinician"), await w.headers("b-specialist")
        x = (await w.client.post(f"{API}/consults", json=CONSULT, headers=clinician)).json()
        assert (await w.client.post(f"{API}/consults/{x['id']}/accept", headers=spec)).status_code == 200
        y = (await w.client.post(f"{API}/consults", json=CONSULT, headers=clinician)).json()
        assert y["status"] == "offered", y
        token = await w.token("b-specialist")
        async with EventClient.connect(host, token) as live:
            before = {
                "list": await w.client.get(f"{API}/consults", headers=spec),
                "get": await w.client.get(f"{API}/consults/{x['id']}", headers=spec),
                "offers": await w.client.get(f"{API}/offers", headers=spec),
            }
            assert x["id"] in ids(before["list"]) and before["get"].status_code == 200
            assert y["id"] in [o["consult"]["id"] for o in before["offers"].json()["items"]]
            assert await emit_every_type(app, w, x["id"], live) == sorted(
                [*EVENT_VIEWS, UNKNOWN]
            )  # all, for now
            if (
                request.param == "expire"
            ):  # its dates run out: nothing withdraws the offers, yet they count no more
                async with app.state.sessionmaker() as session:
                    agreement = await session.get(Agreement, w.agreement_id)
                    agreement.valid_until = datetime.now(UTC) - timedelta(seconds=1)
                    await commit(session)
            else:
                done = await w.client.post(
                    f"{API}/agreements/{w.agreement_id}/{request.param}",
                    headers=await w.headers("a-org_admin"),
                )
                assert done.status_code == 200, done.text
            yield app, host, w, {"x": x["id"], "y": y["id"]}, live


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [c["id"] for c in resp.json()["items"]]


async def emit_every_type(app, w, consult_id: str, live: EventClient) -> list[str]:
    """Store one event of every type about the consult for b-specialist, then a marker; the types the
    open socket was sent before the marker."""
    marker = uuid.uuid4().hex
    async with app.state.sessionmaker() as session:
        for type_ in [*EVENT_VIEWS, UNKNOWN]:
            await emit(
                session,
                user_ids=[w.users["b-specialist"]],
                type=type_,
                consult_id=uuid.UUID(consult_id),
                # An offer.withdrawn carries no content (notify.offers_withdrawn): neither does this one.
                data={"probe": marker} | ({} if type_ == NO_CONTENT else {"question": CONSULT["question"]}),
            )
        await emit(
            session, user_ids=[w.users["b-specialist"]], type="probe", consult_id=None, data={"m": marker}
        )
        await commit(session)
    start = len(live.events)
    await live.wait_for("probe", m=marker)
    got = live.events[start:]
    return sorted(
        e["event"] for e in got if e.get("consult_id") == consult_id and e["data"].get("probe") == marker
    )


async def test_every_consult_route_hides_the_consults(closed):
    app, _, w, consults, _ = closed
    routes = consult_routes(app)
    assert len(routes) >= 10, routes  # the route table was read
    missing = [
        f"{m} {p}" for m, p in routes if m != "GET" and f"{m} {p}" not in BODIES and _takes_body(app, m, p)
    ]
    assert not missing, f"give these routes a body in BODIES: {missing}"
    spec = await w.headers("b-specialist")
    leaks = []
    for (method, path), (name, cid) in ((r, c) for r in routes for c in consults.items()):
        body = BODIES.get(f"{method} {path}", lambda w: None)(w)
        # Other ids in the path (an attachment, an upload) are made up: the consult is what answers first.
        others = {name: uuid.uuid4() for name in ("attachment_id", "upload_id")}
        resp = await w.client.request(
            method, API + path.format(consult_id=cid, **others), json=body, headers=spec
        )
        if resp.status_code not in (403, 404) or any(s in resp.text for s in SECRETS):
            leaks.append(f"{method} {path} ({name}): {resp.status_code} {resp.text[:120]}")
        elif resp.status_code == 404:
            assert resp.json()["code"] == "not_found", resp.text
    assert not leaks, "\n".join(leaks)


def _takes_body(app, method: str, path: str) -> bool:
    return "requestBody" in app.openapi()["paths"][API + path][method.lower()]


@pytest.mark.parametrize("who", ["b-specialist", "b-coordinator", "b-org_admin"])
async def test_no_list_of_the_route_table_shows_them(closed, who):
    app, _, w, consults, _ = closed
    paths = listing_routes(app)
    assert "/consults" in paths and "/offers" in paths, paths
    headers = await w.headers(who)
    for path in paths:
        resp = await w.client.get(API + path, headers=headers)
        assert resp.status_code < 500, (path, resp.text)
        # The audit names the consults its org's members acted on (ids, never content).
        named = [] if path == "/audit" else [name for name, cid in consults.items() if cid in resp.text]
        found = named + [s for s in SECRETS if s in resp.text]
        assert not found, f"GET {path} as {who} still shows {found}"


async def test_the_list_agrees_with_the_consult(closed):
    _, _, w, consults, _ = closed
    spec = await w.headers("b-specialist")
    assert (await w.client.get(f"{API}/consults/{consults['x']}", headers=spec)).status_code == 404
    assert consults["x"] not in ids(await w.client.get(f"{API}/consults", headers=spec))
    # The requesting org keeps its consults, whole.
    mine = await w.client.get(f"{API}/consults/{consults['x']}", headers=await w.headers("a-clinician"))
    assert mine.status_code == 200 and mine.json()["question"] == CONSULT["question"]


async def test_live_push_sends_only_what_tells_nothing(closed, request):
    app, _, w, consults, live = closed
    assert await emit_every_type(app, w, consults["x"], live) == [NO_CONTENT]
    if request.node.callspec.params["closed"] == "expire":
        return
    # The offer of Y the agreement's end withdrew is still told (it tells nothing but that).
    await live.wait_for(NO_CONTENT, consult_id=consults["y"], reason="agreement_closed")


async def test_replay_from_the_start_sends_no_content(closed):
    app, host, w, consults, _ = closed
    async with EventClient.connect(host, await w.token("b-specialist"), last_event_id=0) as replay:
        marker = uuid.uuid4().hex
        async with app.state.sessionmaker() as session:
            await emit(
                session, user_ids=[w.users["b-specialist"]], type="probe", consult_id=None, data={"m": marker}
            )
            await commit(session)
        await replay.wait_for("probe", m=marker)
    about = [e for e in replay.events if e.get("consult_id") in consults.values()]
    told = sorted({e["event"] for e in about})
    assert told == [NO_CONTENT], told  # the stored offer.created (question, age, sex) among others: not sent
    assert not [e for e in about if any(s in json.dumps(e) for s in SECRETS)]


def test_every_emitted_event_type_is_classified():
    """Each `type=` literal passed to emit() in the code is in EVENT_VIEWS (what its reader must see)."""
    root = Path(__file__).resolve().parents[2]
    emitted = set()
    for file in root.glob("*/*.py"):
        if file.relative_to(root).parts[0] in ("tests", "bench") or file.parts[-2].startswith("."):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "emit"
            ):
                for kw in node.keywords:
                    if kw.arg == "type" and isinstance(kw.value, ast.Constant):
                        emitted.add(kw.value.value)
                    elif kw.arg == "type" and isinstance(kw.value, ast.IfExp):
                        emitted |= {kw.value.body.value, kw.value.orelse.value}
    assert len(emitted) >= 6, emitted  # the scan found the emitters
    assert emitted <= set(EVENT_VIEWS), (
        f"classify in consults.access.EVENT_VIEWS: {emitted - set(EVENT_VIEWS)}"
    )
