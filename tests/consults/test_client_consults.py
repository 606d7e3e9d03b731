"""Integration clients with consults:create: consults on behalf of a clinician of their own org."""

import uuid

import pytest

from tests.auth.test_clients import assert_problem, bearer, create_client, token_for
from tests.consults.conftest import CONSULT
from tests.live import put_on_call

CONSULTS = "/api/v1/consults"


async def client_token(world, scopes: list[str], org: str = "A") -> tuple[str, str]:
    """(client id, access token) of a new client of `org` holding `scopes`."""
    made = await create_client(world, scopes, admin=f"{org.lower()}-org_admin", org=org)
    assert made.status_code == 201, made.text
    body = made.json()
    creds = {"client_id": body["id"], "client_secret": body["client_secret"]}
    return body["id"], await token_for(world, creds)


def for_(world, username: str) -> dict:
    return CONSULT | {"on_behalf_of": str(world.users[username])}


async def test_client_creates_a_routed_consult_for_its_clinician_and_follows_it(app, world):
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    cid, token = await client_token(world, ["consults:create"])
    resp = await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token))
    assert resp.status_code == 201, resp.text
    consult = resp.json()
    assert consult["requester_id"] == str(world.users["a-clinician"]) and consult["client_id"] == cid
    assert consult["org_id"] == str(world.orgs["A"]) and consult["status"] == "offered"
    offers = await world.client.get("/api/v1/offers", headers=await world.headers("b-specialist"))
    assert [o["consult_id"] for o in offers.json()["items"]] == [consult["id"]]
    # The client follows what it requested; so does the clinician it requested for.
    for headers in (bearer(token), await world.headers("a-clinician")):
        got = await world.client.get(f"{CONSULTS}/{consult['id']}", headers=headers)
        assert got.status_code == 200 and got.json()["patient_ref"] == CONSULT["patient_ref"]
        listed = await world.client.get(CONSULTS, headers=headers)
        assert [c["id"] for c in listed.json()["items"]] == [consult["id"]]


async def test_creation_is_audited_as_the_client_and_as_the_clinician(world):
    cid, token = await client_token(world, ["consults:create"])
    clinician = str(world.users["a-clinician"])
    consult = (
        await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token))
    ).json()
    audit = await world.client.get(
        "/api/v1/audit", params={"action": "consult.create"}, headers=await world.headers("a-org_admin")
    )
    rows = {(r["actor_type"], r["actor_id"], r["reason"]) for r in audit.json()["items"]}
    assert rows == {("client", cid, f"on_behalf_of:{clinician}"), ("user", clinician, f"via_client:{cid}")}
    assert {r["resource_id"] for r in audit.json()["items"]} == {consult["id"]}
    assert len({r["request_id"] for r in audit.json()["items"]}) == 1  # one request, two principals


@pytest.mark.parametrize(
    ("username", "status", "code"),
    [
        ("b-clinician", 404, "not_found"),  # another org's clinician: as if there were none
        ("c-clinician", 404, "not_found"),
        ("a-specialist", 403, "not_a_clinician"),  # of its org, but not a clinician
        ("a-org_admin", 403, "not_a_clinician"),
    ],
)
async def test_only_a_clinician_of_the_clients_own_org(world, username, status, code):
    _, token = await client_token(world, ["consults:create"])
    assert_problem(
        await world.client.post(CONSULTS, json=for_(world, username), headers=bearer(token)), status, code
    )
    unknown = CONSULT | {"on_behalf_of": str(uuid.uuid4())}
    assert_problem(await world.client.post(CONSULTS, json=unknown, headers=bearer(token)), 404, "not_found")


async def test_a_disabled_clinician_is_refused(world):
    _, token = await client_token(world, ["consults:create"])
    disabled = await world.client.patch(
        f"/api/v1/orgs/{world.orgs['A']}/users/{world.users['a-clinician']}",
        json={"is_active": False},
        headers=await world.headers("a-org_admin"),
    )
    assert disabled.status_code == 200, disabled.text
    resp = await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token))
    assert_problem(resp, 403, "not_a_clinician")


async def test_a_client_names_whom_it_requests_for_and_a_user_names_nobody_else(world):
    _, token = await client_token(world, ["consults:create"])
    assert_problem(
        await world.client.post(CONSULTS, json=CONSULT, headers=bearer(token)), 422, "invalid_input"
    )
    other = for_(world, "a-coordinator")
    resp = await world.client.post(CONSULTS, json=other, headers=await world.headers("a-clinician"))
    assert_problem(resp, 403, "permission_denied")


async def test_without_the_scope_a_client_neither_creates_nor_follows(world):
    _, reader = await client_token(world, ["users:read"])
    resp = await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(reader))
    assert_problem(resp, 403, "permission_denied")
    made = await create_client(world, ["consults:create", "users:read"])
    creds = {"client_id": made.json()["id"], "client_secret": made.json()["client_secret"]}
    full = await token_for(world, creds)
    consult = (
        await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(full))
    ).json()
    narrowed = await token_for(world, creds, scope="users:read")  # the same client, a narrower token
    resp = await world.client.get(f"{CONSULTS}/{consult['id']}", headers=bearer(narrowed))
    assert_problem(resp, 404, "not_found")


async def test_another_orgs_client_sees_nothing_of_it(world):
    _, token = await client_token(world, ["consults:create"])
    consult = (
        await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token))
    ).json()
    for org in ("B", "C"):
        _, theirs = await client_token(world, ["consults:create", "consults:queue"], org=org)
        got = await world.client.get(f"{CONSULTS}/{consult['id']}", headers=bearer(theirs))
        assert_problem(got, 404, "not_found")
        assert (await world.client.get(CONSULTS, headers=bearer(theirs))).json()["items"] == []
        msgs = await world.client.get(f"{CONSULTS}/{consult['id']}/messages", headers=bearer(theirs))
        assert_problem(msgs, 404, "not_found")
    # Acting on it is for people: a client may not cancel, message or call, even its own.
    for tail in ("/cancel", "/call-token"):
        resp = await world.client.post(f"{CONSULTS}/{consult['id']}{tail}", headers=bearer(token))
        assert_problem(resp, 403, "permission_denied")


async def test_idempotency_keys_of_a_client_and_of_its_clinician_are_apart(world):
    _, token = await client_token(world, ["consults:create"])
    key = {"Idempotency-Key": "k-1"}
    first = await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token) | key)
    again = await world.client.post(CONSULTS, json=for_(world, "a-clinician"), headers=bearer(token) | key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]
    own = await world.client.post(CONSULTS, json=CONSULT, headers=await world.headers("a-clinician") | key)
    assert own.status_code == 409, own.text  # the clinician's key is not the client's: never its consult
    assert own.json()["code"] == "idempotency_in_flight"


@pytest.mark.parametrize("value", [123, "not-a-uuid", "\u0000", [], {"id": 1}, "a" * 100_000, True])
async def test_bad_on_behalf_of_is_a_422(world, value):
    _, token = await client_token(world, ["consults:create"])
    resp = await world.client.post(CONSULTS, json=CONSULT | {"on_behalf_of": value}, headers=bearer(token))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json" and resp.json()["code"]


async def test_unknown_fields_are_refused(world):
    _, token = await client_token(world, ["consults:create"])
    body = for_(world, "a-clinician") | {"client_id": str(uuid.uuid4())}
    resp = await world.client.post(CONSULTS, json=body, headers=bearer(token))
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
