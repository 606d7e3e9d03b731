"""The OpenAPI document (api/openapi.py): errors as problem+json with the statuses each operation can
answer, named operations, the rules between fields stated and enforced; a new route gets it all."""

import re
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, FastAPI

from api.errors import PROBLEM
from api.openapi import answers, install, operation_id, problems
from api.schemas import Strict, after
from liaison.app import create_app
from tests.api.test_bad_input import assert_problem
from tests.conftest import make_settings

PROBLEM_REFS = {"#/components/schemas/Problem", "#/components/schemas/ValidationProblem"}


def document() -> dict:
    return create_app(make_settings("sqlite+aiosqlite://", None)).openapi()


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_no_fastapi_validation_error_is_left():
    doc = document()
    assert "HTTPValidationError" not in str(doc) and "ValidationError" not in doc["components"]["schemas"]


def test_every_error_answer_is_problem_json():
    doc, seen = document(), set()
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/readyz":  # readiness answers its own report, 200 or 503
                continue
            assert list(response["content"]) == [PROBLEM], (method, path, status)
            assert response["content"][PROBLEM]["schema"]["$ref"] in PROBLEM_REFS
            seen.add(status)
    assert seen >= {"400", "401", "403", "404", "409", "413", "422", "429", "503"}  # and what routes add
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}


def test_statuses_follow_what_each_route_takes():
    ops = {(m, p): set(op["responses"]) for m, p, op in operations(document())}
    assert ops["POST", "/api/v1/consults"] == {"201", "400", "401", "403", "409", "413", "422", "503"}
    assert ops["GET", "/api/v1/consults/{consult_id}"] == {"200", "401", "404", "422", "503"}
    assert ops["GET", "/api/v1/me"] == {"200", "401", "503"}
    assert ops["POST", "/api/v1/auth/login"] >= {"401", "429"}
    assert ops["GET", "/healthz"] == {"200"}
    assert ops["GET", "/readyz"] == {"200", "503"}


def test_a_401_and_a_503_document_their_headers():
    op = document()["paths"]["/api/v1/consults"]["post"]["responses"]
    assert "WWW-Authenticate" in op["401"]["headers"] and "Retry-After" in op["503"]["headers"]


def test_operation_ids_are_unique_and_meaningful():
    ids = [op["operationId"] for _, _, op in operations(document())]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids), ids
    for expected in (
        "createConsult",
        "listConsults",
        "getConsult",
        "acceptConsult",
        "listConsultMessages",
        "updateOrgUser",
        "getOrgEscalationPolicy",
        "suspendAgreement",
        "setMyAvailability",
        "login",
    ):
        assert expected in ids


def test_metrics_are_documented_as_text():
    op = document()["paths"]["/metrics"]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/plain"]


def test_a_route_added_anywhere_is_described_without_its_help():
    class ThingIn(Strict):
        opens: datetime
        closes: datetime = after("opens")

    @answers(401)
    async def who() -> str:
        return "someone"

    router = APIRouter()

    @router.post("/things/{thing_id}/close", responses=problems(429))
    async def close(thing_id: uuid.UUID, body: ThingIn, actor: str = Depends(who)) -> dict:
        return {}

    app = FastAPI(generate_unique_id_function=operation_id)
    install(app)
    app.include_router(router, prefix="/api/v1")
    op = app.openapi()["paths"]["/api/v1/things/{thing_id}/close"]["post"]
    assert op["operationId"] == "closeThing"
    assert set(op["responses"]) == {"200", "400", "401", "404", "409", "413", "422", "429"}
    closes = app.openapi()["components"]["schemas"]["ThingIn"]["properties"]["closes"]
    assert closes["x-after"] == "opens" and "after `opens`" in closes["description"]


def test_the_rules_between_fields_are_stated():
    schemas = document()["components"]["schemas"]
    assert schemas["AgreementIn"]["properties"]["valid_until"]["x-after"] == "valid_from"
    assert schemas["AgreementIn"]["properties"]["providing_org_id"]["x-differs-from"] == "requesting_org_id"
    assert schemas["ShiftIn"]["properties"]["ends_at"]["x-after"] == "starts_at"


async def test_the_stated_rules_are_enforced(world):
    now = datetime.now(UTC)
    admin = await world.headers("a-org_admin")
    agreement = {
        "requesting_org_id": str(world.orgs["A"]),
        "providing_org_id": str(world.orgs["C"]),
        "specialties": ["burns"],
        "valid_from": now.isoformat(),
        "valid_until": now.isoformat(),  # not after
    }
    resp = await world.client.post("/api/v1/agreements", json=agreement, headers=admin)
    assert "valid_until must come after valid_from" in str(assert_problem(resp, 422, "validation_error"))
    same = agreement | {
        "providing_org_id": str(world.orgs["A"]),
        "valid_until": (now + timedelta(1)).isoformat(),
    }
    resp = await world.client.post("/api/v1/agreements", json=same, headers=admin)
    assert "must differ from" in str(assert_problem(resp, 422, "validation_error"))
    coord = await world.headers("a-coordinator")
    roster = await world.client.post(
        "/api/v1/rosters", json={"specialty": "burns", "name": "burns"}, headers=coord
    )
    shift = {
        "specialist_id": str(world.users["a-specialist"]),
        "starts_at": now.isoformat(),
        "ends_at": now.isoformat(),
    }
    resp = await world.client.post(f"/api/v1/rosters/{roster.json()['id']}/shifts", json=shift, headers=coord)
    assert "ends_at must come after starts_at" in str(assert_problem(resp, 422, "validation_error"))
