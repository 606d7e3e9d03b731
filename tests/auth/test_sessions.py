"""Sign-in, refresh rotation, reuse detection, sign-out, and changes that apply on the next request."""

from tests.conftest import PASSWORD


async def test_login_and_me(world):
    pair = await world.login("a-clinician")
    assert pair["token_type"] == "bearer" and 0 < pair["expires_in"] <= 900
    resp = await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["username"] == "a-clinician" and body["roles"] == ["clinician"]
    assert body["org_id"] == str(world.orgs["A"])


async def test_wrong_password_and_unknown_user_look_the_same(world):
    bad = await world.client.post(
        "/api/v1/auth/login", json={"username": "a-clinician", "password": "nope-nope"}
    )
    unknown = await world.client.post(
        "/api/v1/auth/login", json={"username": "nobody-here", "password": "nope-nope"}
    )
    assert bad.status_code == unknown.status_code == 401
    assert bad.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert bad.headers["content-type"] == "application/problem+json"


async def test_refresh_rotates_and_reuse_revokes_family(world):
    first = await world.login("b-specialist")
    second = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    reuse = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # The family is gone: the newer refresh token and its access token stop working too.
    again = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401
    me = await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.status_code == 401


async def test_refresh_token_is_not_an_access_token(world):
    pair = await world.login("a-clinician")
    resp = await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['refresh_token']}"})
    assert resp.status_code == 401 and resp.json()["code"] == "invalid_token"


async def test_logout_revokes_access_and_refresh(world):
    pair = await world.login("a-coordinator")
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await world.client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    assert (await world.client.get("/api/v1/me", headers=auth)).status_code == 401
    resp = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 401


async def test_disabling_and_role_change_apply_on_next_request(world):
    user_headers = await world.headers("a-specialist")
    admin = await world.headers("a-org_admin")
    url = f"/api/v1/orgs/{world.orgs['A']}/users/{world.users['a-specialist']}"
    resp = await world.client.patch(url, json={"roles": ["specialist", "coordinator"]}, headers=admin)
    assert resp.status_code == 200, resp.text
    me = (await world.client.get("/api/v1/me", headers=user_headers)).json()
    assert "users:read" in me["permissions"]
    assert (await world.client.patch(url, json={"is_active": False}, headers=admin)).status_code == 200
    assert (await world.client.get("/api/v1/me", headers=user_headers)).status_code == 401
    resp = await world.client.post(
        "/api/v1/auth/login", json={"username": "a-specialist", "password": PASSWORD}
    )
    assert resp.status_code == 401


async def test_org_admin_cannot_grant_platform_admin(world):
    admin = await world.headers("a-org_admin")
    resp = await world.client.post(
        f"/api/v1/orgs/{world.orgs['A']}/users",
        headers=admin,
        json={"username": "sneaky", "password": "long-enough-pw", "roles": ["platform_admin"]},
    )
    assert resp.status_code == 422 and resp.json()["code"] == "role_not_grantable"


async def test_password_reset_ends_the_users_sign_ins(world):
    pair = await world.login("a-clinician")
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    resp = await world.client.patch(
        f"/api/v1/orgs/{world.orgs['A']}/users/{world.users['a-clinician']}",
        json={"password": "a-fresh-password-7"},
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    assert (await world.client.get("/api/v1/me", headers=bearer)).status_code == 401
    again = await world.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401 and again.json()["code"] == "invalid_token"
    assert (
        await world.client.post("/api/v1/auth/login", json={"username": "a-clinician", "password": PASSWORD})
    ).status_code == 401
    await world.login("a-clinician", "a-fresh-password-7")
