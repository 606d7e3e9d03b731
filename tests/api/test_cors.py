"""CORS for the REST API: only the allowlisted origins, preflights answered, off by default."""

import shutil

import httpx
import pytest
from pydantic import ValidationError

from api.settings import Settings
from liaison.app import create_app
from tests.conftest import make_settings

ALLOWED, REFUSED = "https://console.hospital.example", "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
def settings_overrides() -> dict:
    return {"cors_origins": [ALLOWED, "http://127.0.0.1:5173"]}


async def test_allowed_origin_may_read_the_answer(client):
    resp = await client.post(
        "/api/v1/auth/login", json={"username": "x", "password": "y"}, headers={"Origin": ALLOWED}
    )
    assert resp.status_code == 401
    assert resp.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-credentials" not in resp.headers


async def test_refused_origin_gets_no_cors_headers(client):
    resp = await client.get("/healthz", headers={"Origin": REFUSED})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers


async def test_preflight_of_an_allowed_origin_is_answered(client):
    resp = await client.options("/api/v1/consults", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in resp.headers["access-control-allow-methods"]
    allowed = resp.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert resp.headers["access-control-max-age"] == "600"


async def test_preflight_of_a_refused_origin_is_refused(client):
    resp = await client.options("/api/v1/consults", headers={"Origin": REFUSED, **PREFLIGHT})
    assert resp.status_code == 400 and "access-control-allow-origin" not in resp.headers
    unknown_header = {**PREFLIGHT, "Access-Control-Request-Headers": "x-smuggled"}
    resp = await client.options("/api/v1/consults", headers={"Origin": ALLOWED, **unknown_header})
    assert resp.status_code == 400


async def test_off_by_default(tmp_path, sqlite_template):
    db = tmp_path / "off.db"
    shutil.copy(sqlite_template, db)
    app = create_app(make_settings(f"sqlite+aiosqlite:///{db}", None))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        pre = await c.options("/api/v1/consults", headers={"Origin": ALLOWED, **PREFLIGHT})
        got = await c.get("/healthz", headers={"Origin": ALLOWED})
    assert pre.status_code == 405 and "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-origin" not in got.headers


@pytest.mark.parametrize("origin", ["https://app.example/", "app.example", "https://app.example/path", "*"])
def test_a_malformed_origin_is_refused_at_start(origin):
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(cors_origins=[origin])
