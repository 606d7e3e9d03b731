"""One at a time across processes: the start-up work that every node, or several operators, may run at once."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# PostgreSQL advisory lock keys (any bigint; "LIAI" then a number). Advisory locks are per database,
# so two Liaison databases on one server never wait for each other.
MIGRATIONS = 0x4C49_4149_0001
BOOTSTRAP = 0x4C49_4149_0002  # the platform admin, its org, the demo data


async def hold(db: AsyncSession | AsyncConnection, key: int) -> None:
    """Wait for lock `key`, then hold it until the current transaction ends."""
    # Take it before the reads the transaction decides on: they then see what the last holder committed.
    # SQLite has nothing to take: our transactions begin IMMEDIATE (api.db, api.migrate), which holds
    # the database's one write lock from their first statement.
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    if bind.dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
