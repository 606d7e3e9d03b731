"""Alembic, driven from code: `liaison migrate`, the tests and the benchmarks all come through here.

Several `liaison migrate` may run at once (a job per deploy, an operator's retry): each runs the
whole upgrade in one transaction under one lock, so the first migrates and the others find the
schema at head. `liaison serve` never migrates; it checks (`require_current`) and refuses to start
on a schema that is behind.
"""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.locks import MIGRATIONS, hold

HERE = Path(__file__).parent / "migrations"


class SchemaBehind(Exception):
    """The database's schema is older than this code (or absent): `liaison migrate` first."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`, one migrating process at a time."""
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            await hold(conn, MIGRATIONS)
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        # pysqlite runs DDL outside any transaction, so two processes would both create the same
        # tables; one BEGIN IMMEDIATE transaction makes the second wait and then see the first's work.
        # (No foreign_keys pragma here: batch migrations recreate tables that others reference.)
        event.listen(engine.sync_engine, "connect", _sqlite_autocommit)
        event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_autocommit(dbapi_conn: Any, _record: object) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (above)


async def require_current(url: str) -> str | None:
    """Raise SchemaBehind unless the schema is at this code's head; a warning when it is past it."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            current = set(await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads()))
    finally:
        await engine.dispose()
    script = ScriptDirectory.from_config(alembic_config())
    heads = ", ".join(sorted(script.get_heads()))
    if current == set(script.get_heads()):
        return None
    if unknown := current - {rev.revision for rev in script.walk_revisions()}:
        # A newer Liaison migrated it (a rolling deploy, or code rolled back): serving is the
        # operator's call, and there is no downgrade command to offer instead.
        return f"the database schema ({', '.join(sorted(unknown))}) is newer than this Liaison's ({heads})"
    if not current:
        raise SchemaBehind("the database has no schema yet: run `liaison migrate`")
    raise SchemaBehind(
        f"the database schema is at {', '.join(sorted(current))}, this Liaison needs {heads}: "
        "run `liaison migrate`"
    )
