"""Async engine and sessions; SQLite gets the pragmas it needs to behave under concurrency."""

from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from starlette.requests import HTTPConnection


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # pysqlite's own transaction handling defers BEGIN; we issue it ourselves (below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_immediate(conn) -> None:
    # A deferred transaction that reads then writes can fail to upgrade its lock under
    # concurrency; taking the write lock up front makes writers queue instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine, **info) -> async_sessionmaker[AsyncSession]:
    """Sessions carry `info` (the event bus, say) for work that follows a commit."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def before_commit(session: AsyncSession, hook: Callable[[AsyncSession], Awaitable[None]]) -> None:
    """Run `hook(session)` in `commit(session)` just before committing; if it raises, nothing commits."""
    session.info.setdefault("before_commit", []).append(hook)


def after_commit(session: AsyncSession, hook: Callable[[AsyncSession], Awaitable[None]]) -> None:
    """Run `hook(session)` once `commit(session)` has made this transaction durable."""
    session.info.setdefault("after_commit", []).append(hook)


async def commit(session: AsyncSession) -> None:
    """Run the before-commit hooks, commit, then run the after-commit hooks (publishing stored events, say)."""
    for hook in session.info.pop("before_commit", []):
        await hook(session)
    await session.commit()
    for hook in session.info.pop("after_commit", []):
        await hook(session)


async def get_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """One session per request; services commit, anything uncommitted is rolled back."""
    async with conn.app.state.sessionmaker() as session:
        yield session
