"""An integration client's lifecycle: disable, enable, rotate (with an overlap), delete; org_admin only, audited."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.db import commit
from auth.models import IntegrationClient
from tests.auth.test_clients import assert_problem, bearer, create_client, grant

ME = "/api/v1/me"


@pytest.fixture
async def made(world) -> dict:
    resp = await create_client(world, ["users:read"])
    assert resp.status_code == 201, resp.text
    return resp.json()


def form(client: dict, secret: str | None = None) -> dict:
    secret = secret or client["client_secret"]
    return {"grant_type": "client_credentials", "client_id": client["id"], "client_secret": secret}


def url(world, client: dict, tail: str = "") -> str:
    return f"/api/v1/orgs/{world.orgs['A']}/clients/{client['id']}{tail}"


async def token(world, client: dict, secret: str | None = None) -> str:
    resp = await grant(world, form(client, secret))
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


async def test_disable_refuses_secret_and_tokens_at_once_and_enable_restores(world, made):
    admin = await world.headers("a-org_admin")
    live = await token(world, made)
    assert (await world.client.get(ME, headers=bearer(live))).status_code == 200
    resp = await world.client.patch(url(world, made), json={"is_active": False}, headers=admin)
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    assert_problem(await world.client.get(ME, headers=bearer(live)), 401, "invalid_token")
    assert_problem(await grant(world, form(made)), 401, "invalid_client")
    resp = await world.client.patch(url(world, made), json={"is_active": True}, headers=admin)
    assert resp.status_code == 200 and resp.json()["is_active"] is True
    assert (await world.client.get(ME, headers=bearer(await token(world, made)))).status_code == 200


async def test_rotation_keeps_the_old_secret_for_the_overlap_then_refuses_it(app, world, made):
    admin = await world.headers("a-org_admin")
    resp = await world.client.post(url(world, made, "/secret"), headers=admin)
    assert resp.status_code == 200, resp.text
    fresh = resp.json()["client_secret"]
    assert fresh != made["client_secret"] and resp.json()["id"] == made["id"]
    await token(world, made, fresh)
    await token(world, made)  # within the overlap (an hour by default) the old secret still works
    async with app.state.sessionmaker() as session:  # the overlap runs out
        client = await session.get(IntegrationClient, uuid.UUID(made["id"]))
        client.previous_secret_until = datetime.now(UTC) - timedelta(seconds=1)
        await commit(session)
    assert_problem(await grant(world, form(made)), 401, "invalid_client")
    await token(world, made, fresh)
    # A second rotation retires the first secret at once: only the one it replaces overlaps.
    again = (await world.client.post(url(world, made, "/secret"), headers=admin)).json()["client_secret"]
    await token(world, made, fresh)
    await token(world, made, again)
    assert_problem(await grant(world, form(made)), 401, "invalid_client")


async def test_rotation_at_once_refuses_the_old_secret_now(world, made):
    admin = await world.headers("a-org_admin")
    resp = await world.client.post(url(world, made, "/secret?at_once=true"), headers=admin)
    assert resp.status_code == 200, resp.text
    assert_problem(await grant(world, form(made)), 401, "invalid_client")
    await token(world, made, resp.json()["client_secret"])


async def test_delete_refuses_everything_and_answers_404_after(world, made):
    admin = await world.headers("a-org_admin")
    live = await token(world, made)
    resp = await world.client.delete(url(world, made), headers=admin)
    assert resp.status_code == 204, resp.text
    assert_problem(await world.client.get(ME, headers=bearer(live)), 401, "invalid_token")
    assert_problem(await grant(world, form(made)), 401, "invalid_client")
    for method, tail in (("PATCH", ""), ("DELETE", ""), ("POST", "/secret")):
        body = {"is_active": True} if method == "PATCH" else None
        resp = await world.client.request(method, url(world, made, tail), json=body, headers=admin)
        assert_problem(resp, 404, "not_found")
    listed = await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/clients", headers=admin)
    assert listed.json() == []


@pytest.mark.parametrize(
    "who, status, code", [("b-org_admin", 404, "not_found"), ("a-coordinator", 403, "permission_denied")]
)
async def test_only_the_orgs_admin_manages_its_clients(world, made, who, status, code):
    headers = await world.headers(who)
    for method, tail in (("PATCH", ""), ("POST", "/secret"), ("DELETE", "")):
        body = {"is_active": False} if method == "PATCH" else None
        resp = await world.client.request(method, url(world, made, tail), json=body, headers=headers)
        assert_problem(resp, status, code)
    await token(world, made)  # untouched


async def test_lifecycle_is_audited(world, made):
    admin = await world.headers("a-org_admin")
    await world.client.patch(url(world, made), json={"is_active": False}, headers=admin)
    await world.client.patch(url(world, made), json={"is_active": True}, headers=admin)
    await world.client.post(url(world, made, "/secret"), headers=admin)
    await world.client.delete(url(world, made), headers=admin)
    rows = (await world.client.get("/api/v1/audit?limit=200", headers=admin)).json()["items"]
    mine = [r["action"] for r in rows if r.get("resource_id") == made["id"]]
    for action in (
        "client.create",
        "client.disable",
        "client.enable",
        "client.rotate_secret",
        "client.delete",
    ):
        assert action in mine, (action, mine)


async def test_scopes_are_an_enum_in_openapi(client):
    doc = (await client.get("/openapi.json")).json()
    scope = doc["components"]["schemas"]["ClientScope"]
    assert sorted(scope["enum"]) == sorted(
        [
            "users:read",
            "agreements:read",
            "audit:read",
            "rosters:read",
            "consults:create",
            "consults:queue",
            "stats:read",
        ]
    )


async def test_more_than_ten_form_fields_is_a_400(world, made):
    fields = form(made) | {f"x{i}": "1" for i in range(12)}
    assert_problem(await grant(world, fields), 400, "invalid_request")
