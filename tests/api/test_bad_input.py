"""Bad input is a 4xx problem+json with a stable code, never a 500, and stored data survives it.

Also the operational endpoints: /healthz, /readyz, /metrics and the served OpenAPI document.
"""

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from agreements.models import Agreement
from api.redis import make_redis
from auth.models import User
from liaison.app import create_app
from orgs.models import Organization
from tests.conftest import PASSWORD, make_settings

LOGIN = "/api/v1/auth/login"
BIG = 10 * 1024 * 1024
MISSING = "00000000-0000-4000-8000-000000000000"


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    return body


async def snapshot(app) -> dict:
    """What is stored: row counts and one user and one agreement as they are now."""
    async with app.state.sessionmaker() as session:
        users = (await session.execute(select(User).order_by(User.username))).scalars().all()
        agreements = (await session.execute(select(Agreement))).scalars().all()
        orgs = (await session.execute(select(func.count()).select_from(Organization))).scalar_one()
        return {
            "orgs": orgs,
            "users": [(u.username, u.org_id, tuple(u.roles), u.is_active, u.password_hash) for u in users],
            "agreements": [(a.id, a.status, tuple(a.specialties)) for a in agreements],
        }


@pytest.fixture
async def before(app, world):
    return await snapshot(app)


async def still_intact(app, world, before) -> None:
    assert await snapshot(app) == before
    await world.login("a-clinician")  # the stored credentials still work


def agreement_body(world, **changes) -> dict:
    now = datetime.now(UTC)
    body = {
        "requesting_org_id": str(world.orgs["A"]),
        "providing_org_id": str(world.orgs["C"]),
        "specialties": ["burns"],
        "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(days=9)).isoformat(),
    }
    return body | changes


# --- malformed bodies -------------------------------------------------------------------------------------------

MALFORMED = [
    b'{"username": "a-clinician", "password": ',
    b"{'username': 'a-clinician'}",
    b'{"username": "a-clinician",}',
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"\xc3\x28",  # invalid UTF-8
    b'{"username": "a-clinician", "password": ' + b"9" * 5000 + b"}",  # a number too long to convert
    b'{"username": "a", "password": "b"} trailing',
]


async def test_malformed_json_on_login(app, world, before):
    for raw in MALFORMED:
        resp = await world.client.post(LOGIN, content=raw, headers={"content-type": "application/json"})
        assert_problem(resp, 400, "malformed_json")
    # Nested deeper than the parser will go: refused as too deep, whether or not the rest would parse.
    resp = await world.client.post(LOGIN, content=b"[" * 5000, headers={"content-type": "application/json"})
    assert_problem(resp, 422, "nesting_too_deep")
    await still_intact(app, world, before)


async def test_malformed_json_on_user_create(app, world, before):
    url = f"/api/v1/orgs/{world.orgs['A']}/users"
    headers = await world.headers("a-org_admin") | {"content-type": "application/json"}
    for raw in [b'{"username": "newbie", "roles": ["clinician"]', b'{"username": newbie}', *MALFORMED]:
        assert_problem(await world.client.post(url, content=raw, headers=headers), 400, "malformed_json")
    await still_intact(app, world, before)


async def test_json_that_is_not_an_object(app, world, before):
    admin = await world.headers("a-org_admin")
    for payload in ([1, 2], ["username", "password"], [], 42, "a-clinician", True, None, 1.5):
        resp = await world.client.post(LOGIN, json=payload)
        body = assert_problem(resp, 422, "validation_error")
        assert body["errors"] and all(e["loc"][0] == "body" for e in body["errors"])
        resp = await world.client.post(f"/api/v1/orgs/{world.orgs['A']}/users", json=payload, headers=admin)
        assert_problem(resp, 422, "validation_error")
        resp = await world.client.post("/api/v1/agreements", json=payload, headers=admin)
        assert_problem(resp, 422, "validation_error")
    await still_intact(app, world, before)


# --- schema violations ------------------------------------------------------------------------------------------


async def test_unknown_fields_are_refused_not_dropped(app, world, before):
    admin = await world.headers("a-org_admin")
    cases = [
        ("POST", LOGIN, {"username": "a-clinician", "password": PASSWORD, "remember_me": True}, {}),
        ("POST", "/api/v1/auth/refresh", {"refresh_token": "x", "scope": "admin"}, {}),
        (
            "POST",
            f"/api/v1/orgs/{world.orgs['A']}/users",
            {
                "username": "sneaky",
                "password": "long-enough-pw",
                "roles": ["clinician"],
                "org_id": str(world.orgs["C"]),
            },
            admin,
        ),
        (
            "POST",
            f"/api/v1/orgs/{world.orgs['A']}/users",
            {"username": "sneaky2", "password": "long-enough-pw", "is_superuser": True},
            admin,
        ),
        (
            "PATCH",
            f"/api/v1/orgs/{world.orgs['A']}/users/{world.users['a-clinician']}",
            {"display_name": "x", "org_id": str(world.orgs["C"])},
            admin,
        ),
        ("POST", "/api/v1/agreements", agreement_body(world, status="active"), admin),
        ("POST", "/api/v1/agreements", agreement_body(world, proposed_by_org_id=str(world.orgs["C"])), admin),
        (
            "POST",
            "/api/v1/orgs",
            {"name": "Org Z", "kind": "ngo", "id": MISSING},
            await world.headers("root"),
        ),
    ]
    for method, url, payload, headers in cases:
        resp = await world.client.request(method, url, json=payload, headers=headers)
        body = assert_problem(resp, 422, "validation_error")
        assert any(e["type"] == "extra_forbidden" for e in body["errors"]), (url, body)
    await still_intact(app, world, before)


async def test_wrong_types(app, world, before):
    admin = await world.headers("a-org_admin")
    users = f"/api/v1/orgs/{world.orgs['A']}/users"
    cases = [
        ("POST", LOGIN, {"username": 123, "password": PASSWORD}, {}),
        ("POST", LOGIN, {"username": "a-clinician", "password": ["test-password-1"]}, {}),
        ("POST", LOGIN, {"username": {"$ne": ""}, "password": {"$ne": ""}}, {}),
        ("POST", LOGIN, {"username": "a-clinician"}, {}),
        ("POST", users, {"username": "typed", "password": "long-enough-pw", "roles": "org_admin"}, admin),
        ("POST", users, {"username": ["typed"], "password": "long-enough-pw"}, admin),
        ("PATCH", f"{users}/{world.users['a-clinician']}", {"is_active": "maybe"}, admin),
        ("PATCH", f"{users}/{world.users['a-clinician']}", {"roles": [1, 2]}, admin),
        ("POST", "/api/v1/agreements", agreement_body(world, specialties="burns"), admin),
        ("POST", "/api/v1/agreements", agreement_body(world, providing_org_id=12), admin),
        ("POST", "/api/v1/agreements", agreement_body(world, valid_from="next tuesday"), admin),
        ("POST", "/api/v1/orgs", {"name": "Org Z", "kind": "pirates"}, await world.headers("root")),
    ]
    for method, url, payload, headers in cases:
        resp = await world.client.request(method, url, json=payload, headers=headers)
        assert_problem(resp, 422, "validation_error")
    await still_intact(app, world, before)


async def test_wrong_content_type_on_json_routes(app, world, before):
    admin = await world.headers("a-org_admin")
    good_login = json.dumps({"username": "a-clinician", "password": PASSWORD})
    new_user = json.dumps({"username": "formuser", "password": "long-enough-pw", "roles": ["clinician"]})
    cases = [
        (LOGIN, good_login, {"content-type": "text/plain"}),
        (
            LOGIN,
            "username=a-clinician&password=test-password-1",
            {"content-type": "application/x-www-form-urlencoded"},
        ),
        (LOGIN, good_login, {"content-type": "application/xml"}),
        (LOGIN, good_login, {}),  # no content type at all
        (f"/api/v1/orgs/{world.orgs['A']}/users", new_user, admin | {"content-type": "text/plain"}),
    ]
    for url, content, headers in cases:
        resp = await world.client.post(url, content=content.encode(), headers=headers)
        assert resp.status_code in (415, 422), (url, headers, resp.status_code, resp.text)
        expected = {415: "unsupported_media_type", 422: "validation_error"}[resp.status_code]
        assert_problem(resp, resp.status_code, expected)
    await still_intact(app, world, before)


# --- size limits ---------------------------------------------------------------------------------------------------


async def test_ten_megabyte_body_with_content_length(app, world, before):
    admin = await world.headers("a-org_admin")
    payload = json.dumps(
        {"username": "bigbody", "password": "long-enough-pw", "display_name": "x" * BIG}
    ).encode()
    for url, headers in ((LOGIN, {}), (f"/api/v1/orgs/{world.orgs['A']}/users", admin)):
        resp = await world.client.post(
            url, content=payload, headers=headers | {"content-type": "application/json"}
        )
        assert resp.request.headers["content-length"] == str(len(payload))
        assert_problem(resp, 413, "body_too_large")
    await still_intact(app, world, before)


async def test_ten_megabyte_body_streamed_without_content_length(app, world, before):
    admin = await world.headers("a-org_admin")
    chunk = b" " * 65536
    sent = 0

    async def stream():
        nonlocal sent
        yield b'{"username": "bigbody", "password": "long-enough-pw", "display_name": "'
        for _ in range(BIG // len(chunk)):
            sent += len(chunk)
            yield chunk
        yield b'"}'

    for url, headers in ((LOGIN, {}), (f"/api/v1/orgs/{world.orgs['A']}/users", admin)):
        sent = 0
        resp = await world.client.post(
            url, content=stream(), headers=headers | {"content-type": "application/json"}
        )
        assert "content-length" not in resp.request.headers
        assert resp.request.headers.get("transfer-encoding") == "chunked"
        assert_problem(resp, 413, "body_too_large")
        assert sent < 4 * 1024 * 1024  # refused early, not after reading all 10 MB
    await still_intact(app, world, before)


async def test_body_just_under_the_cap_is_read(world):
    # The cap is on size, not on every body: a 900 KB (invalid) login body reaches validation.
    payload = json.dumps({"username": "x" * 900_000, "password": "p"})
    resp = await world.client.post(LOGIN, content=payload, headers={"content-type": "application/json"})
    assert_problem(resp, 422, "validation_error")


# --- query and path parameters ---------------------------------------------------------------------------------------


async def test_page_size_and_offset_bounds(app, world, before):
    admin = await world.headers("a-org_admin")
    routes = ["/api/v1/orgs", f"/api/v1/orgs/{world.orgs['A']}/users", "/api/v1/agreements", "/api/v1/audit"]
    for route in routes:
        for query in (
            "limit=1000000",
            "limit=0",
            "limit=-5",
            "offset=-1",
            "limit=abc",
            "offset=1e3",
            "limit=99999999999999999999999999",
        ):
            resp = await world.client.get(f"{route}?{query}", headers=admin)
            body = assert_problem(resp, 422, "validation_error")
            assert body["errors"][0]["loc"][0] == "query", body
        ok = await world.client.get(f"{route}?limit=200&offset=0", headers=admin)
        assert ok.status_code == 200 and ok.json()["limit"] == 200
    await still_intact(app, world, before)


async def test_non_uuid_path_ids(app, world, before):
    admin = await world.headers("a-org_admin")
    a = world.orgs["A"]
    for method, url, payload in [
        ("GET", "/api/v1/orgs/not-a-uuid", None),
        ("GET", "/api/v1/orgs/123/users", None),
        ("POST", "/api/v1/orgs/%27%20OR%201=1--/users", {"username": "zz-top"}),
        ("PATCH", f"/api/v1/orgs/{a}/users/12345", {"display_name": "x"}),
        ("GET", "/api/v1/agreements/xyz", None),
        ("POST", "/api/v1/agreements/xyz/accept", None),
        ("POST", f"/api/v1/agreements/{world.agreement_id}x/revoke", None),
        ("GET", f"/api/v1/agreements/{'9' * 400}", None),
    ]:
        resp = await world.client.request(method, url, headers=admin, json=payload)
        body = assert_problem(resp, 422, "validation_error")
        assert body["errors"][0]["loc"][0] == "path", (url, body)
    # A well-formed id that matches nothing is a 404, as another org's would be.
    assert_problem(await world.client.get(f"/api/v1/agreements/{MISSING}", headers=admin), 404, "not_found")
    await still_intact(app, world, before)


async def test_unknown_query_enum_values(app, world, before):
    admin = await world.headers("a-org_admin")
    for url in (
        "/api/v1/orgs?kind=pirates",
        "/api/v1/orgs?kind=CIVILIAN",
        "/api/v1/agreements?status=pending",
        "/api/v1/agreements?status=",
        "/api/v1/audit?since=yesterday",
        "/api/v1/audit?since=2026-01-01T00:00:00",
    ):  # naive: which timezone would that be?
        body = assert_problem(await world.client.get(url, headers=admin), 422, "validation_error")
        assert body["errors"][0]["loc"][0] == "query"
    good = await world.client.get("/api/v1/orgs?kind=ngo", headers=admin)
    assert good.status_code == 200 and [o["kind"] for o in good.json()["items"]] == ["ngo"]
    await still_intact(app, world, before)


async def test_unknown_routes_and_methods_are_problems(world):
    assert_problem(await world.client.get("/api/v1/nope"), 404, "not_found")
    assert_problem(await world.client.delete("/api/v1/auth/login"), 405, "method_not_allowed")


async def test_errors_never_echo_the_rejected_input(world):
    secret = "do-not-echo-this-clinical-text"
    resp = await world.client.post(LOGIN, json={"username": secret, "password": 5, "extra": secret})
    assert_problem(resp, 422, "validation_error")
    assert secret not in resp.text


# --- operations --------------------------------------------------------------------------------------------------


async def test_healthz_and_readyz(env, client):
    resp = await client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    checks = resp.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"] == ("ok" if env["redis_url"] else "not configured")


async def test_readyz_reports_a_dead_database(tmp_path):
    # A database file in a directory that does not exist: the process is alive but not ready.
    dead = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db", None))
    async with (
        dead.router.lifespan_context(dead),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=dead), base_url="http://liaison.test") as c,
    ):
        assert (await c.get("/healthz")).status_code == 200
        resp = await c.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable" and body["checks"]["database"].startswith("error")


async def test_readyz_reports_a_lost_redis(env, app, client):
    if env["name"] == "embedded":
        pytest.skip("the embedded configuration has no Redis")
    # The node started with Redis; now its Redis connection points at a port nobody listens on.
    live = app.state.redis
    app.state.redis = make_redis("redis://127.0.0.1:1/0")
    try:
        resp = await client.get("/readyz")
    finally:
        await app.state.redis.aclose()
        app.state.redis = live
    assert resp.status_code == 503
    body = resp.json()
    assert body["checks"] == {"database": "ok", "redis": body["checks"]["redis"]}
    assert body["checks"]["redis"].startswith("error")
    assert (await client.get("/readyz")).status_code == 200


async def test_metrics_count_requests_by_route_template(world):
    await world.client.get(f"/api/v1/orgs/{world.orgs['A']}", headers=await world.headers("a-clinician"))
    resp = await world.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "# TYPE liaison_http_requests_total counter" in text
    # Labelled by the full route template, never by the concrete path.
    for method, route in (("GET", r"/orgs/\{org_id\}"), ("POST", "/auth/login")):
        pattern = (
            rf'liaison_http_requests_total\{{method="{method}",route="/api/v1{route}",status="200"\}} [1-9]'
        )
        assert re.search(pattern, text), pattern
    assert str(world.orgs["A"]) not in text  # ids never become labels


async def test_openapi_is_served(client):
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Liaison"
    for path in (
        "/api/v1/auth/login",
        "/api/v1/orgs",
        "/api/v1/orgs/{org_id}/users",
        "/api/v1/agreements",
        "/api/v1/agreements/{agreement_id}/accept",
        "/api/v1/audit",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in doc["paths"], path
