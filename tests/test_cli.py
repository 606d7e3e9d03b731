"""The `liaison` command line, run as a user would: migrate, demo, create-admin, audit verify."""

import os
import subprocess
import sys

import httpx

from liaison.app import create_app
from tests.conftest import make_settings


def liaison(db_url: str, *args: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    environ |= {
        "LIAISON_DATABASE_URL": db_url,
        "LIAISON_ENVIRONMENT": "development",
        "LIAISON_ARGON2_TIME_COST": "1",
        "LIAISON_ARGON2_MEMORY_KIB": "1024",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "liaison", *args], env=environ, capture_output=True, text=True, timeout=60
    )


async def test_migrate_demo_admin_verify(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert liaison(url, "migrate").returncode == 0
    first, again = liaison(url, "demo"), liaison(url, "demo")
    assert "demo data created" in first.stdout and "already present" in again.stdout
    made = liaison(url, "create-admin", "--username", "ops-admin", "--password", "a-long-password")
    assert made.returncode == 0 and "created ops-admin" in made.stdout
    assert liaison(url, "create-admin", "--username", "x", "--password", "short").returncode != 0
    app = create_app(make_settings(url, None))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cli.test") as c:
            for user, password in (
                ("civ-clinician", "liaison-demo-2026"),
                ("mil-specialist", "liaison-demo-2026"),
                ("admin", "liaison-demo-2026"),
                ("ops-admin", "a-long-password"),
            ):
                resp = await c.post("/api/v1/auth/login", json={"username": user, "password": password})
                assert resp.status_code == 200, (user, resp.text)
    verified = liaison(url, "audit", "verify")
    assert verified.returncode == 0 and "audit chain OK" in verified.stdout


async def test_admin_from_environment_at_start(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'boot.db'}"
    assert liaison(url, "migrate").returncode == 0
    app = create_app(make_settings(url, None, admin_username="boot-admin", admin_password="boot-password-1"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cli.test") as c,
    ):
        resp = await c.post(
            "/api/v1/auth/login", json={"username": "boot-admin", "password": "boot-password-1"}
        )
        me = await c.get("/api/v1/me", headers={"Authorization": f"Bearer {resp.json()['access_token']}"})
    assert me.json()["roles"] == ["platform_admin"]


def test_several_workers_without_redis_are_refused(tmp_path):
    """Each worker would be alone: calls, events, close orders and the call ledger cross workers only through Redis."""
    done = liaison(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", "serve", "--workers", "2", "--port", "1")
    assert done.returncode == 2 and "LIAISON_REDIS_URL" in done.stderr


def test_demo_refuses_outside_development(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    assert liaison(url, "migrate").returncode == 0
    prod = {"LIAISON_ENVIRONMENT": "production", "LIAISON_JWT_SECRET": "p" * 40}
    refused = liaison(url, "demo", **prod)
    assert refused.returncode == 2 and "refused" in refused.stderr, refused
    assert "demo data" not in refused.stdout
    assert liaison(url, "demo", **prod | {"LIAISON_ENVIRONMENT": "test"}).returncode == 0
