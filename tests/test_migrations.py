"""Upgrading a database that already holds events and an audit trail keeps both whole."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from api.db import make_sessionmaker
from api.migrate import upgrade
from audit.chain import event_hash
from audit.models import GENESIS_HASH, AuditEvent
from audit.service import verify_chain
from tests.conftest import scratch_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/old.db"
        return
    async with scratch_database("liaison_migrations", migrate=False) as (_, url):
        yield url


async def test_events_and_a_sealed_chain_survive_the_upgrade(fresh_url):
    await upgrade(fresh_url, "0004")
    engine = create_async_engine(fresh_url)
    prev = GENESIS_HASH
    async with engine.begin() as conn:
        for seq in (1, 2):
            row = AuditEvent(
                seq=seq,
                at=datetime(2026, 11, 1, tzinfo=UTC),
                actor_type="user",
                action=f"old.{seq}",
                outcome="success",
                prev_hash=prev,
                hash="",
            )
            row.hash = event_hash(row, prev)
            await conn.execute(
                text(
                    "INSERT INTO audit_events (seq, at, actor_type, action, outcome, prev_hash, hash) "
                    "VALUES (:seq, :at, :actor_type, :action, :outcome, :prev_hash, :hash)"
                ),
                {
                    k: getattr(row, k)
                    for k in ("seq", "at", "actor_type", "action", "outcome", "prev_hash", "hash")
                },
            )
            prev = row.hash
        await conn.execute(text("UPDATE audit_head SET seq = 2, hash = :h WHERE id = 1"), {"h": prev})
        for _n in range(3):
            await conn.execute(
                text(
                    "INSERT INTO events (channel, type, data, created_at) VALUES "
                    "('u:x', 'old', '{}', CURRENT_TIMESTAMP)"
                )
            )
    await engine.dispose()

    await upgrade(fresh_url)
    engine = create_async_engine(fresh_url)
    try:
        async with engine.connect() as conn:
            positions = (await conn.execute(text("SELECT pos FROM events ORDER BY id"))).scalars().all()
            log_ids = (await conn.execute(text("SELECT log_id FROM event_log"))).scalars().all()
        assert positions == [1, 2, 3] and len(log_ids) == 1 and len(log_ids[0]) == 32
        async with make_sessionmaker(engine)() as session:
            report = await verify_chain(session)
        assert report.ok and report.checked == 2
    finally:
        await engine.dispose()


async def test_users_and_identity_providers_survive_the_credentials_upgrade(fresh_url):
    """0008: usernames and issuers become unique per org; existing rows and their links are kept."""
    await upgrade(fresh_url, "0007")
    engine = create_async_engine(fresh_url)
    ids = {
        k: uuid.uuid4().hex if "sqlite" in fresh_url else str(uuid.uuid4()) for k in ("a", "b", "u", "i", "c")
    }
    now = datetime(2026, 11, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        for org, name in (("a", "Org A"), ("b", "Org B")):
            await conn.execute(
                text("INSERT INTO organizations (id, name, kind, created_at) VALUES (:id, :n, 'ngo', :t)"),
                {"id": ids[org], "n": name, "t": now},
            )
        await conn.execute(
            text(
                "INSERT INTO users (id, org_id, username, display_name, roles, is_active, created_at, updated_at)"
                " VALUES (:id, :o, 'jsmith', '', '[]', true, :t, :t)"
            ),
            {"id": ids["u"], "o": ids["a"], "t": now},
        )
        await conn.execute(
            text(
                "INSERT INTO identity_providers (id, org_id, issuer, audience, jwks, created_at)"
                " VALUES (:id, :o, 'https://idp.example', 'aud', '{}', :t)"
            ),
            {"id": ids["i"], "o": ids["a"], "t": now},
        )
        await conn.execute(
            text(
                "INSERT INTO integration_clients (id, org_id, name, secret_hash, scopes, is_active, created_at)"
                " VALUES (:id, :o, 'bridge', 'h', '[]', true, :t)"
            ),
            {"id": ids["c"], "o": ids["a"], "t": now},
        )
    await engine.dispose()
    await upgrade(fresh_url)
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            idp = (
                await conn.execute(text("SELECT issuer, is_active, jwks_uri FROM identity_providers"))
            ).one()
            assert tuple(idp) == ("https://idp.example", True, None)
            client = (await conn.execute(text("SELECT previous_secret_hash FROM integration_clients"))).one()
            assert client[0] is None
            # The same username and issuer in another org are now allowed; in the same org, not.
            other = {
                "o": ids["b"],
                "t": now,
                "id": uuid.uuid4().hex if "sqlite" in fresh_url else str(uuid.uuid4()),
            }
            await conn.execute(
                text(
                    "INSERT INTO users (id, org_id, username, display_name, roles, is_active, created_at, updated_at)"
                    " VALUES (:id, :o, 'jsmith', '', '[]', true, :t, :t)"
                ),
                other,
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO users (id, org_id, username, display_name, roles, is_active, created_at,"
                        " updated_at) VALUES (:id, :o, 'jsmith', '', '[]', true, :t, :t)"
                    ),
                    {
                        "id": uuid.uuid4().hex if "sqlite" in fresh_url else str(uuid.uuid4()),
                        "o": ids["a"],
                        "t": now,
                    },
                )
    finally:
        await engine.dispose()
