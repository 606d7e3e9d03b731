"""Several nodes, migrations and demo seedings started at the same moment on one fresh database.

Real processes (`liaison serve`, `liaison migrate`, `liaison demo`), spawned back to back. The nodes
and seedings hash passwords at the production argon2 cost: the window between "is it there?" and
the commit is then as wide as on a real deployment, and a race in it shows.
"""

import asyncio
import os
import re
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from agreements.models import Agreement
from api.migrate import upgrade
from auth.models import User
from orgs.models import Organization
from rosters.models import Roster, Shift, SpecialistProfile
from tests.conftest import PG_ADMIN_URL, _unavailable, make_settings
from tests.live import Node, http

ADMIN, ADMIN_PASSWORD, OPERATOR = "ops-root", "ops-root-password-1", "Liaison Operations"
PRODUCTION_ARGON2 = {"argon2_time_cost": 3, "argon2_memory_kib": 65536}
DSN = PG_ADMIN_URL.replace("+asyncpg", "")


@pytest.fixture(scope="module")
async def pg():
    """An admin connection to the local PostgreSQL, and a migrated template database to copy."""
    try:
        conn = await asyncpg.connect(DSN, timeout=5)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    template = f"liaison_startup_tmpl_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{template}"')
    await upgrade(_url(template))
    yield conn, template
    await conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    await conn.close()


def _url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@asynccontextmanager
async def fresh_database(pg, *, migrated: bool):
    """A database of its own (migrated and empty, or empty of tables too), dropped afterwards."""
    conn, template = pg
    name = f"liaison_startup_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if migrated else ""))
    try:
        yield _url(name)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def counts(url: str, *queries) -> list[int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [(await conn.execute(q)).scalar_one() for q in queries]
    finally:
        await engine.dispose()


def count(model, *where):
    return select(func.count()).select_from(model).where(*where)


@pytest.mark.parametrize("nodes,rounds", [(2, 5), (3, 3)])
async def test_nodes_started_together_make_one_admin(pg, redis_url, nodes, rounds):
    """Every node comes up and is ready; the admin named by the environment, and its org, exist once."""
    for _ in range(rounds):
        async with fresh_database(pg, migrated=True) as url:
            settings = make_settings(
                url, redis_url, admin_username=ADMIN, admin_password=ADMIN_PASSWORD, **PRODUCTION_ARGON2
            )
            group = [Node(settings) for _ in range(nodes)]
            try:
                await asyncio.gather(*(node.spawn().ready() for node in group))
                for node in group:
                    async with http(node.host) as client:
                        ready = await client.get("/readyz")
                        assert ready.status_code == 200, ready.text
            finally:
                await asyncio.gather(*(asyncio.to_thread(node.stop) for node in group))
            assert await counts(
                url,
                count(User),
                count(Organization),
                count(User, User.username == ADMIN),
                count(Organization, Organization.name == OPERATOR),
            ) == [1, 1, 1, 1]


def together(n: int, url: str, *args: str) -> list[subprocess.CompletedProcess]:
    """`liaison ARGS` run `n` times at once (spawned back to back), each to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    # Plain tracebacks: the exception is then the last line a failed run writes.
    env |= {
        "LIAISON_DATABASE_URL": url,
        "LIAISON_ENVIRONMENT": "development",
        "_TYPER_STANDARD_TRACEBACK": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "liaison", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    said = [p.communicate(timeout=90) for p in procs]  # reading as they run: a full pipe would stall one
    return [
        subprocess.CompletedProcess(p.args, p.returncode, out, err)
        for p, (out, err) in zip(procs, said, strict=False)
    ]


def assert_all_ok(runs: list[subprocess.CompletedProcess]) -> None:
    failed = [
        (
            r.returncode,
            re.findall(r"^[\w.]+(?:Error|Exception): .{0,300}", r.stderr, re.M)[-1:] or r.stderr[-500:],
        )
        for r in runs
        if r.returncode != 0
    ]
    assert not failed, failed


async def assert_migrated_once(url: str) -> None:
    from alembic.script import ScriptDirectory

    from api.migrate import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
            genesis = (await conn.execute(text("SELECT count(*) FROM audit_head"))).scalar_one()
    finally:
        await engine.dispose()
    assert (versions, genesis) == (heads, 1)


async def test_migrations_run_together_on_postgresql(pg):
    async with fresh_database(pg, migrated=False) as url:
        runs = await asyncio.to_thread(together, 3, url, "migrate")
        assert_all_ok(runs)
        await assert_migrated_once(url)


async def test_migrations_run_together_on_sqlite(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'together.db'}"
    runs = await asyncio.to_thread(together, 3, url, "migrate")
    assert_all_ok(runs)
    await assert_migrated_once(url)


DEMO = [
    count(Organization),
    count(User),
    count(Agreement),
    count(Roster),
    count(Shift),
    count(SpecialistProfile),
]
DEMO_ONCE = [
    3,
    9,
    2,
    4,
    4,
    2,
]  # operator + civilian + military; admin + 8; both ways; trauma, burns, paediatrics, radiology


async def _seed_together(url: str) -> None:
    runs = await asyncio.to_thread(together, 3, url, "demo")
    assert_all_ok(runs)
    assert sorted(r.stdout.strip() for r in runs) == ["demo data already present"] * 2 + ["demo data created"]
    assert await counts(url, *DEMO) == DEMO_ONCE


async def test_demo_seeded_together_on_postgresql(pg):
    async with fresh_database(pg, migrated=True) as url:
        await _seed_together(url)


async def test_demo_seeded_together_on_sqlite(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    await upgrade(url)
    await _seed_together(url)


def test_serve_refuses_a_schema_that_is_behind(tmp_path):
    """Nodes never migrate: on a database without the schema, or an older one, they say what to run."""
    from tests.test_cli import liaison

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    empty = liaison(url, "serve", "--port", "1")
    assert empty.returncode == 2 and "no schema yet: run `liaison migrate`" in empty.stderr, empty.stderr
    asyncio.run(upgrade(url, "0003"))
    behind = liaison(url, "serve", "--port", "1")
    assert behind.returncode == 2, behind.stderr
    assert behind.stderr.strip().splitlines() == [behind.stderr.strip()]  # one line, no traceback
    assert "schema is at 0003" in behind.stderr and "run `liaison migrate`" in behind.stderr


async def test_a_schema_from_a_newer_liaison_is_served_with_a_warning(tmp_path):
    """No downgrade command exists to offer instead; a rolling deploy's old nodes keep starting."""
    from api.migrate import require_current

    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    await upgrade(url)
    assert await require_current(url) is None
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    await engine.dispose()
    assert "9999_future" in await require_current(url)
