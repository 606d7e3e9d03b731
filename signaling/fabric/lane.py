"""A short path to Redis for the fabric's per-join and per-relay scripts.

redis-py's client path (the pool's lock, the retry wrapper, the observability hooks, and with a
socket timeout a task per command from `wait_for`) costs about 170 µs a command on this machine,
and about 500 µs once the process has idled a moment; one of redis-py's own Connections, used
directly, costs 30 µs and 100 µs more than a bare socket. Every join and every relay to another
node is such a call, so the lane keeps idle Connections of its own (made with the client's
settings: address, credentials, database, TLS) and runs each script on one of them, under one
deadline.
"""

import asyncio
import builtins
from collections import deque

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

KEEP = 32  # idle connections kept; a burst past it opens more (up to `limit`) and closes them after


class Lane:
    """Runs scripts on Redis without the client's per-command layers; failures are RedisErrors."""

    def __init__(self, redis: Redis, *, timeout: float = 5.0, limit: int = 64) -> None:
        pool = redis.connection_pool
        # The deadline is ours (asyncio.timeout, no task), and it covers the connect too: the pool's
        # short connect timeout, on a node whose event loop runs late under a burst of joins, refused
        # joins as `fabric_unavailable` while Redis was healthy. A stale connection is retried, not
        # pinged; a Redis that refuses connections is reported at once, not after redis-py's backoff.
        self._options = pool.connection_kwargs | {
            "socket_timeout": None,
            "socket_connect_timeout": None,
            "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 0),
        }
        self._connection_class = pool.connection_class
        self._idle: deque[AbstractConnection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self.timeout = timeout

    async def run(self, script: AsyncScript, keys: list, args: list):
        """EVALSHA, loading the script if Redis has forgotten it (a restart)."""
        async with self._slots:
            try:
                return await self._call("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                return await self._call("EVAL", script.script, len(keys), *keys, *args)

    async def _call(self, *command):
        for attempt in (1, 2):
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else self._connection_class(**self._options)
            try:
                async with asyncio.timeout(self.timeout):
                    if not conn.is_connected:
                        await conn.connect()
                    await conn.send_command(*command)
                    answer = await conn.read_response()
            except ResponseError:
                await self._keep(conn)  # Redis answered: the connection is sound
                raise
            except (
                builtins.TimeoutError
            ):  # before OSError, its base: the reply may still come, so drop the link
                await conn.disconnect(nowait=True)
                raise TimeoutError(f"Redis did not answer within {self.timeout} s") from None
            except (ConnectionError, OSError) as exc:
                await conn.disconnect(nowait=True)
                if reused and attempt == 1:  # Redis went away since: its other idle links are stale too
                    await self.close()
                    continue
                raise ConnectionError(str(exc)) from None
            except BaseException:  # cancelled: as with a timeout, the link may yet carry a reply
                await conn.disconnect(nowait=True)
                raise
            await self._keep(conn)
            return answer

    async def _keep(self, conn: AbstractConnection) -> None:
        if len(self._idle) < KEEP:
            self._idle.append(conn)
        else:
            await conn.disconnect(nowait=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, deque()
        for conn in idle:
            await conn.disconnect(nowait=True)
