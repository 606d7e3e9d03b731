"""What the command line says when it cannot start: one actionable line per problem, no traceback.

A bad setting names the variable and what is wrong with it; a store that cannot be reached names
the store and its address (the password hidden). `liaison check` runs the same checks without
serving (README, Command line)."""

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import exc as sa
from sqlalchemy.engine import make_url

from api.errors import unavailable
from api.settings import Settings

# Values never echoed back: a mistyped secret in a terminal or a CI log is a leaked secret.
_SECRET_WORDS = ("secret", "password", "key")
# SQLSTATE classes of a database that is there but will not have us: 28 (authentication) and 3D
# (no such database). Either is a configuration to fix, like a refused connection.
_REFUSED_SQLSTATES = ("28", "3D")
_UNPARSED = re.compile(r'error parsing value for field "(\w+)"')


def settings_problems(exc: ValidationError | SettingsError) -> list[str]:
    """One line per invalid setting: `LIAISON_NAME: what is wrong (got 'value')`."""
    if isinstance(exc, SettingsError):  # a list or dict setting that is not JSON
        found = _UNPARSED.search(str(exc))
        name = f"LIAISON_{found.group(1).upper()}" if found else "a LIAISON_* list or map setting"
        return [f'{name}: not valid JSON (a list is written as JSON, e.g. \'["first", "second"]\')']
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err.get("loc", ()))
        message = err["msg"].removeprefix("Value error, ")
        if not field:  # a check across settings: its message names them
            lines.append(message)
            continue
        name = f"LIAISON_{str(err['loc'][0]).upper()}"
        # A validator's own message already shows the value; a secret's is never shown.
        quiet = err["type"] == "value_error" or any(w in field for w in _SECRET_WORDS)
        shown = "" if quiet else f" (got {err.get('input')!r})"
        lines.append(f"{name}: {message}{shown}")
    return lines


def store_problem(exc: BaseException, settings: Settings) -> str | None:
    """`cannot reach <store> at <address>: <the driver's one line>`, or None if exc is no store fault."""
    if isinstance(exc, RedisError) and settings.redis_url:
        return f"cannot reach Redis at {hide_password(settings.redis_url)} (LIAISON_REDIS_URL): {said(exc)}"
    if _database_refused(exc):
        url = hide_password(settings.database_url)
        return f"cannot connect to the database at {url} (LIAISON_DATABASE_URL): {said(exc)}"
    return None


def _database_refused(exc: BaseException) -> bool:
    if isinstance(exc, OSError) or unavailable(exc) is not None:
        return True
    if not isinstance(exc, sa.DBAPIError):
        return False
    state = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    # SQLite: a file in a directory that is not there, or not writable.
    return state[:2] in _REFUSED_SQLSTATES or "unable to open database file" in str(exc.orig)


def sqlite_problem(url: str) -> str | None:
    """A SQLite file that cannot be opened, said before anything tries (aiosqlite's failed connect
    leaves a thread that outlives the event loop and prints its own traceback at exit)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    directory = Path(parsed.database).resolve().parent
    if not directory.is_dir():
        return f"the database file's directory {directory} does not exist (LIAISON_DATABASE_URL)"
    if not os.access(directory, os.W_OK):
        return f"the database file's directory {directory} is not writable (LIAISON_DATABASE_URL)"
    return None


def hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa.ArgumentError, ValueError):
        return url.split("@")[-1]  # not a URL SQLAlchemy reads (Redis's): keep only the address


def said(exc: BaseException) -> str:
    """The innermost cause's type and first line: the driver's own words, no SQL, no parameters."""
    inner: BaseException = exc
    while (nxt := getattr(inner, "orig", None) or inner.__cause__) is not None and nxt is not inner:
        inner = nxt
    text = (str(inner).strip().splitlines() or [""])[0][:200]
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check(settings: Settings) -> list[Check]:
    """The database reachable and migrated to this code's head; Redis reachable when configured."""
    return [await _check_database(settings), await _check_redis(settings)]


async def _check_database(settings: Settings) -> Check:
    from api.migrate import SchemaBehind, require_current

    where = hide_password(settings.database_url)
    if problem := sqlite_problem(settings.database_url):
        return Check("database", False, problem)
    try:
        newer = await asyncio.wait_for(
            require_current(settings.database_url), settings.db_connect_timeout * 3
        )
    except SchemaBehind as exc:
        return Check("database", False, f"{where}: {exc}")
    except Exception as exc:
        return Check("database", False, store_problem(exc, settings) or f"{where}: {said(exc)}")
    if newer:
        return Check("database", True, f"{where}: reachable; warning: {newer}")
    return Check("database", True, f"{where}: reachable, schema up to date")


async def _check_redis(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", True, "not configured (LIAISON_REDIS_URL unset): one process, no fan-out")
    where = hide_password(settings.redis_url)
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return Check("redis", False, store_problem(exc, settings) or f"{where}: {said(exc)}")
    finally:
        await client.aclose()
    return Check("redis", True, f"{where}: reachable")
