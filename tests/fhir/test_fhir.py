"""FHIR R4: a whole consult read back as ServiceRequest, Task and Communication, searched and
paged, behind the same org boundary as the REST API; every resource served is valid R4."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from audit.models import AuditEvent
from fhir import codes
from tests.live import put_on_call

BASE = "/fhir/R4"
TRAUMA = "trauma-surgery"


def request(*, patient: str = "FH2-0042", specialty: str = TRAUMA, priority: str = "stat", **extra) -> dict:
    """A ServiceRequest as a client app would POST it."""
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": priority,
        "performerType": {"coding": [{"system": codes.SPECIALTY, "code": specialty}]},
        "subject": {"identifier": {"system": codes.PATIENT_REF, "value": patient}},
        "reasonCode": [{"text": "Blast injury, left leg. Amputate or transfer?"}],
        "note": [{"text": "BP 90/60, tourniquet 40 min"}],
        "extension": [
            {"url": codes.EXT + "patient-age", "valueInteger": 27},
            {"url": codes.EXT + "language", "valueCode": "en"},
        ],
        "contained": [
            {
                "resourceType": "Basic",
                "id": "site",
                "code": {"text": "site-capabilities"},
                "extension": [
                    {"url": codes.SITE_CAPABILITY + "surgeon", "valueBoolean": False},
                    {"url": codes.SITE_CAPABILITY + "blood_units", "valueInteger": 2},
                ],
            }
        ],
        "supportingInfo": [{"reference": "#site"}],
        **extra,
    }


async def get(w, who: str, path: str, r4, status: int = 200) -> dict:
    resp = await w.client.get(BASE + path, headers=await w.headers(who))
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(codes.FHIR_JSON)
    body = resp.json()
    await r4.check(body)
    return body


async def create(w, r4, who: str = "a-clinician", **kw) -> dict:
    resp = await w.client.post(
        BASE + "/ServiceRequest",
        json=request(**kw),
        headers={**await w.headers(who), "Content-Type": codes.FHIR_JSON},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"{BASE}/ServiceRequest/{body['id']}"
    await r4.check(body)
    return body


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"]]


async def test_metadata_is_a_capability_statement(client, r4):
    resp = await client.get(BASE + "/metadata")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(codes.FHIR_JSON)
    statement = resp.json()
    await r4.check(statement)
    kinds = {r["type"] for r in statement["rest"][0]["resource"]}
    assert kinds == {
        "ServiceRequest",
        "Task",
        "Communication",
        "PractitionerRole",
        "Organization",
        "Practitioner",
    }


async def test_a_consult_through_fhir_from_request_to_completion(app, world, r4):
    w = world
    await put_on_call(
        app.state.sessionmaker, org_id=w.orgs["B"], user_ids=[w.users["b-specialist"]], specialty=TRAUMA
    )
    sr = await create(w, r4)
    cid = sr["id"]
    assert sr["status"] == "active" and sr["priority"] == "stat"
    assert sr["subject"]["identifier"]["value"] == "FH2-0042"

    task = await get(w, "a-clinician", f"/Task/{cid}", r4)
    assert task["status"] == "requested" and task["businessStatus"]["coding"][0]["code"] == "offered"
    assert datetime.fromisoformat(task["restriction"]["period"]["end"]) > datetime.now(UTC)

    # Offered, not yet assigned: the partner's specialist sees the order, not whose it is.
    triage = await get(w, "b-specialist", f"/ServiceRequest/{cid}", r4)
    assert "identifier" not in triage["subject"] and "note" not in triage and "contained" not in triage

    resp = await w.client.post(f"/api/v1/consults/{cid}/accept", headers=await w.headers("b-specialist"))
    assert resp.status_code == 200, resp.text
    for who, body in (("b-specialist", "Transfer; keep the tourniquet."), ("a-clinician", "Understood.")):
        resp = await w.client.post(
            f"/api/v1/consults/{cid}/messages", json={"body": body}, headers=await w.headers(who)
        )
        assert resp.status_code == 201, resp.text

    task = await get(w, "b-specialist", f"/Task/{cid}", r4)
    assert (
        task["status"] == "accepted"
        and task["owner"]["reference"] == f"Practitioner/{w.users['b-specialist']}"
    )
    assert "restriction" not in task  # accepted: no deadline left to escalate on
    thread = await get(w, "a-clinician", f"/Communication?based-on=ServiceRequest/{cid}", r4)
    assert [e["resource"]["payload"][0]["contentString"] for e in thread["entry"]] == [
        "Transfer; keep the tourniquet.",
        "Understood.",
    ]
    one = await get(w, "b-specialist", f"/Communication/{thread['entry'][0]['resource']['id']}", r4)
    assert one["sender"]["reference"] == f"Practitioner/{w.users['b-specialist']}"

    resp = await w.client.post(
        f"/api/v1/consults/{cid}/complete",
        json={"recommendation": "Transfer to role 2", "disposition": "transfer"},
        headers=await w.headers("b-specialist"),
    )
    assert resp.status_code == 200, resp.text
    task = await get(w, "a-clinician", f"/Task/{cid}", r4)
    assert task["status"] == "completed" and task["output"][0]["valueString"] == "Transfer to role 2"
    assert (await get(w, "a-clinician", f"/ServiceRequest/{cid}", r4))["status"] == "completed"

    roles = await get(w, "b-coordinator", f"/PractitionerRole?specialty={TRAUMA}", r4)
    assert [e["resource"]["practitioner"]["reference"] for e in roles["entry"]] == [
        f"Practitioner/{w.users['b-specialist']}"
    ]
    assert (await get(w, "a-coordinator", f"/Organization/{w.orgs['B']}", r4))["name"] == "Org B"
    person = await get(w, "a-coordinator", f"/Practitioner/{w.users['a-clinician']}", r4)
    assert person["identifier"][0]["value"] == "a-clinician"
    org_a = {str(uid) for name, uid in w.users.items() if name.startswith("a-")}
    assert set(ids(await get(w, "a-coordinator", "/Practitioner", r4))) == org_a


async def test_search_by_status_patient_specialty_and_date_with_paging(world, r4):
    w = world
    made = [await create(w, r4, patient=f"P-{i}", priority="routine") for i in range(5)]
    made.append(await create(w, r4, patient="P-0", specialty="dermatology", priority="urgent"))
    today = datetime.now(UTC).date()

    async def search(query: str, kind: str = "ServiceRequest") -> list[str]:
        return ids(await get(w, "a-clinician", f"/{kind}?{query}", r4))

    assert set(await search("patient=P-0")) == {made[0]["id"], made[5]["id"]}
    assert await search(f"patient=P-0&specialty={codes.SPECIALTY}|dermatology") == [made[5]["id"]]
    assert await search("priority=urgent") == [made[5]["id"]]
    assert len(await search(f"authored=ge{today}")) == 6
    assert await search(f"authored=lt{today}") == []
    assert await search("status=completed") == []
    assert len(await search("status=active")) == 6
    assert len(await search("status=requested,accepted", kind="Task")) == 6

    seen, url = [], f"{BASE}/ServiceRequest?_count=4&authored=ge{today}"
    while url:
        resp = await w.client.get(url, headers=await w.headers("a-clinician"))
        assert resp.status_code == 200, resp.text
        page = resp.json()
        await r4.check(page)
        seen += ids(page)
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == sorted(m["id"] for m in made) and len(seen) == 6


async def test_another_orgs_resources_are_absent(world, r4):
    w = world
    cid = (await create(w, r4))["id"]
    assert ids(await get(w, "c-clinician", "/ServiceRequest", r4)) == []
    assert ids(await get(w, "c-coordinator", "/Task", r4)) == []
    for path in (f"/ServiceRequest/{cid}", f"/Task/{cid}", f"/Communication?based-on=ServiceRequest/{cid}"):
        outcome = await get(w, "c-coordinator", path, r4, status=404)
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-found"
    await get(w, "c-coordinator", f"/Practitioner/{w.users['a-clinician']}", r4, status=404)


async def test_reads_are_audited_as_the_rest_api_audits_them(app, world, r4):
    w = world
    cid = (await create(w, r4))["id"]
    await get(w, "a-coordinator", f"/ServiceRequest/{cid}", r4)
    async with app.state.sessionmaker() as session:
        reads = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.resource_id == cid, AuditEvent.action == "consult.read")
        )
    assert reads == 1


def _deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"a": value}
    return value


BAD = [
    ("unknown element", {"bodySite": [{"text": "leg"}]}, 422),
    ("wrong type", {"priority": 3}, 422),
    ("NUL in text", {"reasonCode": [{"text": "leg\x00"}]}, 422),
    ("no specialty system", {"performerType": {"coding": [{"code": TRAUMA}]}}, 422),
    ("a real name as subject", {"subject": {"display": "John Smith"}}, 422),
    ("another resource", {"resourceType": "Patient"}, 422),
    ("profile of the wrong shape", {"meta": {"profile": [[[[]]]]}}, 422),
    ("deep nesting", {"meta": _deep(40)}, 422),
    ("huge body", {"note": [{"text": "x" * 2_000_000}]}, 413),
]


@pytest.mark.parametrize(("name", "change", "status"), BAD, ids=[b[0] for b in BAD])
async def test_bad_service_requests_are_refused_with_an_operation_outcome(world, r4, name, change, status):
    w = world
    resp = await w.client.post(
        BASE + "/ServiceRequest", json=request() | change, headers=await w.headers("a-clinician")
    )
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(codes.FHIR_JSON)
    await r4.check(resp.json())
    assert (await get(w, "a-clinician", "/ServiceRequest", r4))["entry"] == []  # nothing stored


async def test_malformed_json_and_unknown_search_parameters_are_400(world, r4):
    w = world
    headers = {**await w.headers("a-clinician"), "Content-Type": codes.FHIR_JSON}
    resp = await w.client.post(BASE + "/ServiceRequest", content=b'{"resourceType": ', headers=headers)
    assert resp.status_code == 400 and resp.json()["resourceType"] == "OperationOutcome"
    for query in ("?bodysite=leg", "?_count=0", "?authored=yesterday", "?_id=not-a-uuid"):
        outcome = await get(w, "a-clinician", "/ServiceRequest" + query, r4, status=400)
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "fhir_bad_search"
    await get(w, "b-specialist", "/ServiceRequest", r4, status=200)
    resp = await w.client.get(BASE + "/Task")
    assert resp.status_code == 401 and resp.json()["resourceType"] == "OperationOutcome"


async def test_an_offered_specialist_cannot_create_and_a_clinician_cannot_list_people(world, r4):
    w = world
    resp = await w.client.post(
        BASE + "/ServiceRequest", json=request(), headers=await w.headers("b-specialist")
    )
    assert resp.status_code == 403 and resp.json()["resourceType"] == "OperationOutcome"
    await get(w, "a-clinician", "/Practitioner", r4, status=403)


async def test_a_client_app_requests_for_a_clinician_of_its_org(world, r4):
    from tests.consults.test_client_consults import client_token

    w = world
    _, token = await client_token(w, ["consults:create"])
    headers = {"Authorization": f"Bearer {token}"}
    body = request(requester={"reference": f"Practitioner/{w.users['a-clinician']}"})
    resp = await w.client.post(BASE + "/ServiceRequest", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    await r4.check(resp.json())
    assert resp.json()["requester"]["reference"] == f"Practitioner/{w.users['a-clinician']}"
    # Without a requester a client names nobody: refused, as POST /api/v1/consults refuses it.
    resp = await w.client.post(BASE + "/ServiceRequest", json=request(), headers=headers)
    assert resp.status_code == 422 and resp.json()["resourceType"] == "OperationOutcome"
    foreign = request(requester={"reference": f"Practitioner/{w.users['c-clinician']}"})
    resp = await w.client.post(BASE + "/ServiceRequest", json=foreign, headers=headers)
    assert resp.status_code == 404 and resp.json()["resourceType"] == "OperationOutcome"
