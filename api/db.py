"""Async engine and the unit of work: the one session class, and the one path by which it commits."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, cast

from sqlalchemy import Connection, CursorResult, Dialect, Result, Table, event, insert
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from starlette.requests import ClientDisconnect, HTTPConnection, Request

from api.errors import ClientGone, log_failure
from api.openapi import answers
from api.tasks import whole

log = logging.getLogger("liaison.db")


class CallLedger(Protocol):
    """What the kernel needs of the call ledger (signaling.fabric.ledger): marks made before a commit."""

    async def end(self, *, rooms: tuple[str, ...] = (), users: tuple[str, ...] = ()) -> None: ...


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 3.0,
    connect_timeout: float = 3.0,
) -> AsyncEngine:
    """The engine; for PostgreSQL a bounded pool (see api.settings: db_pool_*) whose wait ends in a 503."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args={"timeout": connect_timeout},
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_operational_error)
    event.listen(engine.sync_engine, "checkout", _closed_is_replaced)
    return engine


def _closed_is_replaced(dbapi_conn: Any, _record: object, _proxy: object) -> None:
    """A pooled connection the server has closed (its backend terminated, the server restarted) is
    replaced at checkout, so the next request does not fail on it."""
    # Instead of pool_pre_ping, whose ping costs three round trips (BEGIN, ";", ROLLBACK) on every
    # checkout, several per request: asyncpg already knows, with none, that the server closed a
    # connection it was not using. A connection that dies in use answers 503 and SQLAlchemy then
    # recycles every connection older than the failure.
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _connect_or_operational_error(
    dialect: Dialect, _record: object, cargs: list[Any], cparams: dict[str, Any]
) -> Any:
    """Connect; a database that can't be reached is an OperationalError with SQLSTATE 08001."""
    # As libpq drivers report it. asyncpg raises a bare OSError (refused, unknown host, timed out),
    # which SQLAlchemy passes on unwrapped: it would look like any other OSError, a bug's included.
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # ConnectionRefusedError, socket.gaierror, TimeoutError (connect timeout)
        # The driver module's own class: its attributes are whatever the driver (or we) put there.
        error: Any = dialect.loaded_dbapi.OperationalError(f"could not connect to the database: {exc!r}", exc)
        error.pgcode = error.sqlstate = "08001"
        raise error from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    # pysqlite's own transaction handling defers BEGIN; we issue it ourselves (below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # A deferred transaction that reads then writes can fail to upgrade its lock under
    # concurrency; taking the write lock up front makes writers queue instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


Hook = Callable[["UnitOfWork"], Awaitable[None]]


class UnitOfWork(AsyncSession):
    """Every session of ours. Work that must happen before its transaction commits (marks in the
    call ledger) and notices that follow it (new events to sequence) ride on it, typed; `commit()`
    here is refused so that no caller can skip them — commit with `api.db.commit(session)`."""

    def __init__(
        self,
        *args: Any,
        ledger: CallLedger | None = None,
        on_events: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        self._on_events = on_events
        self._before: list[Hook] = []
        self._after: list[Hook] = []
        self.emitted = False  # events were added: the log is told once this commits
        self._rows: dict[Table, list[dict[str, Any]]] = {}
        self._committing = False

    def before_commit(self, hook: Hook) -> None:
        """Run `hook(self)` just before committing; if it raises, nothing commits."""
        self._before.append(hook)

    def after_commit(self, hook: Hook) -> None:
        """Run `hook(self)` once this transaction is durable; a failure is logged, never raised,
        since the caller must still hear that its write succeeded."""
        self._after.append(hook)

    def insert_later(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert these rows just before committing, a table's in one statement: cheaper than an ORM
        object each for rows nothing reads back inside the transaction."""
        self._rows.setdefault(table, []).extend(rows)

    async def commit(self) -> None:
        if not self._committing:
            raise RuntimeError("commit through api.db.commit(session), the one commit path")
        await super().commit()

    async def rollback(self) -> None:
        self._reset()
        # Shielded as SQLAlchemy shields close(): the rollback returns the connection to the pool,
        # and a cancellation landing there would cut the pool's own reset short (logged as an error).
        await whole(super().rollback())

    async def _commit(self) -> None:
        hooks, after, emitted, rows = self._before, self._after, self.emitted, self._rows
        self._reset()
        for hook in hooks:
            await hook(self)
        for table, values in rows.items():
            await self.execute(insert(table), values)
        self._committing = True
        try:
            await super().commit()
        finally:
            self._committing = False
        for hook in after:
            try:
                await hook(self)
            except Exception as exc:
                log_failure(log, "work after a commit failed; the commit stands", exc)
        if emitted and self._on_events is not None:
            try:
                self._on_events()
            except Exception as exc:  # the commit stands; the log's own poll picks the events up
                log_failure(log, "could not notify the event log", exc)

    def _reset(self) -> None:
        self._before, self._after, self.emitted, self._rows = [], [], False, {}


def make_sessionmaker(
    engine: AsyncEngine, *, ledger: CallLedger | None = None, on_events: Callable[[], None] | None = None
) -> async_sessionmaker[UnitOfWork]:
    return async_sessionmaker(
        engine, class_=UnitOfWork, expire_on_commit=False, ledger=ledger, on_events=on_events
    )


def before_commit(session: AsyncSession, hook: Hook) -> None:
    """Run `hook(session)` in `commit(session)` just before committing; if it raises, nothing commits."""
    _unit(session).before_commit(hook)


def after_commit(session: AsyncSession, hook: Hook) -> None:
    """Run `hook(session)` once `commit(session)` has made this transaction durable."""
    _unit(session).after_commit(hook)


async def commit(session: AsyncSession) -> None:
    """The one commit path: before-commit hooks, the commit, then the notices that follow it."""
    await _unit(session)._commit()


def _unit(session: AsyncSession) -> UnitOfWork:
    if not isinstance(session, UnitOfWork):
        raise TypeError("sessions come from api.db.make_sessionmaker")
    return session


@answers(503)  # the database (or Redis behind it) not answering
async def get_session(conn: HTTPConnection) -> AsyncIterator[UnitOfWork]:
    """One session per request; services commit, anything uncommitted is rolled back."""
    async with conn.app.state.sessionmaker() as session:
        if isinstance(conn, Request):
            await _still_wanted(conn, session)
        yield session


async def _still_wanted(request: Request, session: UnitOfWork) -> None:
    """Take the request's connection now and start no work for a client that gave up meanwhile."""
    # Under load the wait is for the connection: a client that timed out and left has had its
    # answer; doing its work anyway would only lengthen the queue behind it.
    try:
        await request.body()  # kept for the route: is_disconnected() would swallow an unread body message
    except ClientDisconnect:
        raise ClientGone() from None
    await session.connection()
    if await request.is_disconnected():
        raise ClientGone()


async def insert_unique(session: AsyncSession, row: Any, conflict: Exception) -> None:
    """Add `row` and flush at once, raising `conflict` on a unique violation: left to a later autoflush
    (the audit's query) the IntegrityError would surface where nobody expects it, as a 500."""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise conflict from None


def affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched."""
    # AsyncSession.execute is typed as answering a Result; for DML it is a CursorResult.
    return cast(CursorResult[Any], result).rowcount
