"""Alembic, driven from code: `liaison migrate`, the tests and the benchmarks all come through here.

Several `liaison migrate` may run at once (a job per deploy, an operator's retry): each runs the
whole upgrade in one transaction under one lock, so the first migrates and the others find the
schema at head.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.locks import MIGRATIONS, hold

HERE = Path(__file__).parent / "migrations"


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


def _upgrade(connection, revision: str) -> None:
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


def _sqlite_autocommit(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (above)

