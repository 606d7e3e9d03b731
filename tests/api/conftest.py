"""A scratch PostgreSQL database per test module, for the fault tests (tests/faults.py)."""

import uuid

import asyncpg
import pytest

from api.migrate import upgrade
from tests.conftest import PG_ADMIN_URL, _unavailable

ADMIN_DSN = PG_ADMIN_URL.replace("+asyncpg", "")


@pytest.fixture(scope="module")
async def scratch():
    """(name, url) of a migrated database of the module's own: terminating its backends hits no other test."""
    name = f"liaison_faults_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    await upgrade(url)
    yield name, url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
