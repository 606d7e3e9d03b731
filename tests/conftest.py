"""Fixtures: the app on SQLite (embedded) and on PostgreSQL + Redis (scaled), and a seeded world.

Every test that takes `client` runs in both configurations. PostgreSQL and Redis tests skip when
they are not answering, except under CI=true, where a missing service fails the run.
"""

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from agreements.models import Agreement
from api.db import commit
from api.migrate import upgrade
from api.settings import Settings
from auth.models import User
from auth.passwords import Passwords
from liaison.app import create_app
from orgs.models import Organization
from tests import protocol

pytest_plugins = ["tests.watchdog"]

PG_ADMIN_URL = os.environ.get(
    "LIAISON_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _own_redis_database(url: str) -> str:
    """Under pytest-xdist each worker flushes a Redis database of its own: the next ones after `url`'s."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1 + int(worker.removeprefix('gw'))) % 16}"


REDIS_URL = _own_redis_database(os.environ.get("LIAISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"))
# Uploaded files go under a directory of the run's own, never ./attachments of the checkout.
ATTACHMENTS = Path(tempfile.mkdtemp(prefix="liaison-test-attachments-"))
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "test-password-1"
ROLES = ("clinician", "specialist", "coordinator", "org_admin")
TEST_SECRET = "test-secret-" + "x" * 40


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "invalid_frames: the test sends malformed WebSocket frames on purpose (tests/protocol.py)"
    )
    protocol.install()


def pytest_unconfigure(config) -> None:
    shutil.rmtree(ATTACHMENTS, ignore_errors=True)


@pytest.fixture(autouse=True)
def protocol_checked(request):
    """Fail the test if a WebSocket message it sent or received does not match /asyncapi.json."""
    protocol.CHECKER.violations.clear()
    protocol.CHECKER.check_sent = request.node.get_closest_marker("invalid_frames") is None
    yield
    found, protocol.CHECKER.violations[:] = list(protocol.CHECKER.violations), []
    assert not found, "messages that do not match /asyncapi.json:\n" + "\n".join(found[:20])


def make_settings(database_url: str, redis_url: str | None, **overrides) -> Settings:
    base = dict(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=TEST_SECRET,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        attachments_path=str(ATTACHMENTS / uuid.uuid4().hex),
    )
    return Settings(**(base | overrides))


def _unavailable(what: str, exc: Exception):
    message = f"{what} is not answering ({type(exc).__name__}: {exc})"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true the PostgreSQL and Redis tests must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@asynccontextmanager
async def scratch_database(prefix: str, *, migrate: bool = True):
    """A database of its own on the local PostgreSQL (migrated unless told not to); dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""), timeout=5)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrate:
            await upgrade(url)
        yield name, url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(scope="session")
async def pg_url():
    """A fresh database for this test session on the local PostgreSQL, migrated once."""
    async with scratch_database("liaison_pytest") as (_, url):
        yield url


@pytest.fixture(scope="session")
async def redis_url():
    try:
        r = Redis.from_url(REDIS_URL)
        await r.ping()
        await r.aclose()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


async def reset_pg(url: str) -> None:
    # A background task of the previous test's app that outlived its shutdown (tasks are given up on
    # after api.tasks.STOP_WAIT) can still hold row locks: the TRUNCATE then deadlocks with it, once.
    for attempt in range(3):
        try:
            return await _truncate_all(url)
        except DBAPIError as exc:
            if "deadlock detected" not in str(exc) or attempt == 2:
                raise


async def _truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"
                    )
                )
            ).scalars()
            # The audit tables refuse TRUNCATE through triggers; a test reset runs without them.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            await conn.execute(
                text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
            )
            await conn.execute(
                text("INSERT INTO event_log (id, log_id) VALUES (1, :i)"), {"i": uuid.uuid4().hex}
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=["embedded", "scaled"])
def env(request, tmp_path, sqlite_template) -> dict:
    """Database and Redis URLs of one configuration (sync, so that it may pull in the session fixtures)."""
    if request.param == "embedded":
        db = tmp_path / "liaison.db"
        shutil.copy(sqlite_template, db)
        return {"name": "embedded", "database_url": f"sqlite+aiosqlite:///{db}", "redis_url": None}
    return {
        "name": "scaled",
        "database_url": request.getfixturevalue("pg_url"),
        "redis_url": request.getfixturevalue("redis_url"),
    }


async def reset_env(env: dict) -> None:
    if env["name"] != "scaled":
        return
    await reset_pg(env["database_url"])
    r = Redis.from_url(env["redis_url"])
    await r.flushdb()
    await r.aclose()


@pytest.fixture
def settings_overrides() -> dict:
    """Override in a test module to change settings for its tests."""
    return {}


@pytest.fixture
async def app(env, settings_overrides):
    await reset_env(env)
    application = create_app(make_settings(env["database_url"], env["redis_url"], **settings_overrides))
    async with application.router.lifespan_context(application):
        yield application
        watchdog = asyncio.create_task(_report_stuck_shutdown(60))
    watchdog.cancel()


async def _report_stuck_shutdown(seconds: float) -> None:
    """A shutdown that hangs names what it waits on, instead of stalling the suite without a word."""
    await asyncio.sleep(seconds)
    for task in asyncio.all_tasks():  # past pytest's capture: a hung teardown never reports
        print(f"--- {task.get_name()}", file=sys.__stderr__)
        task.print_stack(file=sys.__stderr__)
    pytest.fail(f"the app did not shut down within {seconds}s; its tasks are printed above")


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as c:
        yield c


@dataclass
class World:
    """Three orgs: A (civilian) may send trauma-surgery consults to B (military); C (ngo) has no agreement."""

    client: httpx.AsyncClient
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    agreement_id: uuid.UUID | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    async def login(self, username: str, password: str = PASSWORD) -> dict:
        resp = await self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def token(self, username: str) -> str:
        if username not in self._tokens:
            self._tokens[username] = (await self.login(username))["access_token"]
        return self._tokens[username]

    async def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username)}"}


@pytest.fixture
async def world(app, client) -> World:
    return await seed_world(app, client)


async def seed_world(app, client: httpx.AsyncClient) -> World:
    """Orgs A, B, C and ops, a user of every role in each, and the active A→B agreement."""
    w = World(client=client)
    digest = await Passwords(time_cost=1, memory_kib=1024).hash(PASSWORD)
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        ops = Organization(name="Ops", kind="government")
        orgs = {
            key: Organization(name=f"Org {key}", kind=kind)
            for key, kind in (("A", "civilian"), ("B", "military"), ("C", "ngo"))
        }
        session.add_all([ops, *orgs.values()])
        await session.flush()  # no relationship() links the tables, so rows go in FK order by hand
        for key, org in orgs.items():
            w.orgs[key] = org.id
            for role in ROLES:
                user = User(
                    org_id=org.id, username=f"{key.lower()}-{role}", roles=[role], password_hash=digest
                )
                session.add(user)
                w.users[user.username] = user.id
        await session.flush()
        root = User(org_id=ops.id, username="root", roles=["platform_admin"], password_hash=digest)
        session.add(root)
        w.users["root"] = root.id
        w.orgs["ops"] = ops.id
        agreement = Agreement(
            requesting_org_id=w.orgs["A"],
            providing_org_id=w.orgs["B"],
            specialties=["trauma-surgery"],
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=30),
            status="active",
            proposed_by_org_id=w.orgs["A"],
            created_by=w.users["a-org_admin"],
        )
        session.add(agreement)
        await commit(session)
        w.agreement_id = agreement.id
    return w
