"""Integration clients: created by an org admin, signed in with the client-credentials grant, scoped."""

import base64
import uuid
from urllib.parse import quote

import pytest
from jose import jwt

from tests.conftest import TEST_SECRET

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/me"


async def create_client(
    world, scopes: list[str], *, admin: str = "a-org_admin", org: str = "A", name: str = "EHR bridge"
):
    return await world.client.post(
        f"/api/v1/orgs/{world.orgs[org]}/clients",
        headers=await world.headers(admin),
        json={"name": name, "scopes": scopes},
    )


@pytest.fixture
async def reader(world) -> dict:
    """Org A's client holding users:read only: {"client_id", "client_secret"}."""
    resp = await create_client(world, ["users:read"])
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return {"client_id": body["id"], "client_secret": body["client_secret"]}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}


async def grant(world, form: dict, headers: dict | None = None):
    return await world.client.post(TOKEN, data=form, headers=headers or {})


async def token_for(world, creds: dict, **form) -> str:
    resp = await grant(world, {"grant_type": "client_credentials", **creds, **form})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code
    return body


# --- creation ----------------------------------------------------------------------------------


async def test_secret_is_shown_once_and_never_listed(world):
    resp = await create_client(world, ["users:read", "agreements:read"])
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["org_id"] == str(world.orgs["A"]) and created["scopes"] == [
        "agreements:read",
        "users:read",
    ]
    assert len(created["client_secret"]) >= 32 and created["is_active"] is True
    listed = await world.client.get(
        f"/api/v1/orgs/{world.orgs['A']}/clients", headers=await world.headers("a-org_admin")
    )
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [created["id"]]
    assert created["client_secret"] not in listed.text and "secret" not in listed.text


@pytest.mark.parametrize(
    "scope", ["users:manage", "identity:manage", "agreements:manage", "orgs:create", "admin", ""]
)
async def test_scope_not_grantable_to_a_client_is_refused_at_creation(world, scope):
    resp = await create_client(world, ["users:read", scope])
    assert_problem(resp, 422, "validation_error")  # not one of the ClientScope enum
    listed = await world.client.get(
        f"/api/v1/orgs/{world.orgs['A']}/clients", headers=await world.headers("a-org_admin")
    )
    assert listed.json() == []


async def test_another_orgs_admin_gets_404_and_non_admin_403(world):
    assert_problem(await create_client(world, ["users:read"], admin="b-org_admin", org="A"), 404, "not_found")
    listed = await world.client.get(
        f"/api/v1/orgs/{world.orgs['A']}/clients", headers=await world.headers("b-org_admin")
    )
    assert_problem(listed, 404, "not_found")
    assert_problem(
        await create_client(world, ["users:read"], admin="a-coordinator"), 403, "permission_denied"
    )


# --- the grant ---------------------------------------------------------------------------------


async def test_grant_with_form_credentials(world, reader):
    resp = await grant(world, {"grant_type": "client_credentials", **reader})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer" and body["scope"] == "users:read" and 0 < body["expires_in"] <= 900
    claims = jwt.get_unverified_claims(body["access_token"])
    assert (
        claims["cid"] == reader["client_id"]
        and claims["org"] == str(world.orgs["A"])
        and claims["typ"] == "access"
    )
    me = await world.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "client" and me.json()["id"] == reader["client_id"]
    assert me.json()["org_id"] == str(world.orgs["A"]) and me.json()["permissions"] == ["users:read"]
    assert me.json()["username"] is None and me.json()["roles"] == []


async def test_grant_with_http_basic(world, reader):
    resp = await grant(
        world, {"grant_type": "client_credentials"}, basic(reader["client_id"], reader["client_secret"])
    )
    assert resp.status_code == 200, resp.text
    me = await world.client.get(ME, headers=bearer(resp.json()["access_token"]))
    assert me.status_code == 200 and me.json()["kind"] == "client" and me.json()["id"] == reader["client_id"]


async def test_grant_answers_form_only_not_json(world, reader):
    resp = await world.client.post(TOKEN, json={"grant_type": "client_credentials", **reader})
    assert_problem(resp, 400, "unsupported_grant_type")


async def test_client_token_reads_its_own_orgs_users(world, reader):
    token = await token_for(world, reader)
    resp = await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    names = {u["username"] for u in resp.json()["items"]}
    assert "a-clinician" in names and not any(n.startswith("b-") for n in names)


async def test_client_token_gets_404_for_another_orgs_users(world, reader):
    token = await token_for(world, reader)
    resp = await world.client.get(f"/api/v1/orgs/{world.orgs['B']}/users", headers=bearer(token))
    body = assert_problem(resp, 404, "not_found")
    assert "b-specialist" not in str(body)


async def test_client_token_gets_403_where_its_scopes_do_not_reach(world, reader):
    token = await token_for(world, reader)
    assert_problem(
        await world.client.get("/api/v1/agreements", headers=bearer(token)), 403, "permission_denied"
    )
    resp = await world.client.post(
        f"/api/v1/orgs/{world.orgs['A']}/users",
        headers=bearer(token),
        json={"username": "made-by-client", "password": "long-enough-pw", "roles": ["clinician"]},
    )
    assert_problem(resp, 403, "permission_denied")
    resp = await world.client.post(
        f"/api/v1/orgs/{world.orgs['A']}/clients",
        headers=bearer(token),
        json={"name": "child", "scopes": ["users:read"]},
    )
    assert_problem(resp, 403, "permission_denied")


async def test_narrower_scope_on_request(world):
    resp = await create_client(world, ["users:read", "agreements:read"])
    creds = {"client_id": resp.json()["id"], "client_secret": resp.json()["client_secret"]}
    granted = await grant(world, {"grant_type": "client_credentials", "scope": "agreements:read", **creds})
    assert granted.status_code == 200 and granted.json()["scope"] == "agreements:read"
    token = granted.json()["access_token"]
    assert (await world.client.get(ME, headers=bearer(token))).json()["permissions"] == ["agreements:read"]
    resp = await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=bearer(token))
    assert_problem(resp, 403, "permission_denied")


async def test_forged_scope_claim_is_not_honoured(world, reader):
    """A token claiming more scope than the client holds only gets what the client holds."""
    claims = jwt.get_unverified_claims(await token_for(world, reader)) | {
        "scope": "users:read agreements:read users:manage"
    }
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256", headers={"kid": "liaison-1"})
    me = await world.client.get(ME, headers=bearer(token))
    assert me.status_code == 200 and me.json()["permissions"] == ["users:read"]
    assert_problem(
        await world.client.get("/api/v1/agreements", headers=bearer(token)), 403, "permission_denied"
    )


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["form", "basic"])
async def test_wrong_secret_is_invalid_client(world, reader, how):
    if how == "form":
        resp = await grant(
            world,
            {
                "grant_type": "client_credentials",
                "client_id": reader["client_id"],
                "client_secret": reader["client_secret"] + "x",
            },
        )
    else:
        resp = await grant(world, {"grant_type": "client_credentials"}, basic(reader["client_id"], "wrong"))
    body = assert_problem(resp, 401, "invalid_client")
    assert body["error"] == "invalid_client"
    assert reader["client_secret"] not in resp.text


@pytest.mark.parametrize(
    "creds",
    [
        {"client_id": str(uuid.uuid4()), "client_secret": "whatever"},
        {"client_id": "not-a-uuid", "client_secret": "whatever"},
        {},
    ],
    ids=["unknown-id", "malformed-id", "none"],
)
async def test_unknown_or_missing_client_is_invalid_client(world, reader, creds):
    resp = await grant(world, {"grant_type": "client_credentials", **creds})
    assert assert_problem(resp, 401, "invalid_client")["error"] == "invalid_client"


@pytest.mark.parametrize(
    "header", ["Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon").decode()]
)
async def test_malformed_basic_header_is_invalid_client(world, reader, header):
    resp = await grant(world, {"grant_type": "client_credentials"}, {"Authorization": header})
    assert assert_problem(resp, 401, "invalid_client")["error"] == "invalid_client"


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token", "", None])
async def test_wrong_grant_type_is_unsupported(world, reader, grant_type):
    form = dict(reader) | ({} if grant_type is None else {"grant_type": grant_type})
    resp = await grant(world, form)
    assert assert_problem(resp, 400, "unsupported_grant_type")["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "scope", ["agreements:read", "users:read users:manage", "identity:manage", "nonsense"]
)
async def test_scope_the_client_does_not_hold_is_invalid_scope(world, reader, scope):
    resp = await grant(world, {"grant_type": "client_credentials", "scope": scope, **reader})
    assert assert_problem(resp, 400, "invalid_scope")["error"] == "invalid_scope"
    assert "access_token" not in resp.json()


async def test_client_token_cannot_refresh_or_sign_in_as_a_user(world, reader):
    token = await token_for(world, reader)
    resp = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert_problem(resp, 401, "invalid_token")


async def test_client_secret_guessing_is_limited(world):
    admin = await world.headers("a-org_admin")
    made = (
        await world.client.post(
            f"/api/v1/orgs/{world.orgs['A']}/clients", json={"name": "app", "scopes": []}, headers=admin
        )
    ).json()
    limit = 10  # the default LIAISON_LOGIN_MAX_FAILURES, in a 300 s window
    codes = []
    for _ in range(limit + 3):
        resp = await world.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": made["id"], "client_secret": "guess"},
        )
        codes.append(resp.status_code)
    assert codes[:limit] == [401] * limit and set(codes[limit:]) == {429}
    right = await world.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": made["id"],
            "client_secret": made["client_secret"],
        },
    )
    assert right.status_code == 429  # the right secret waits out the window too
