"""The optional shared Redis connection; absent in the embedded default."""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

MAX_CONNECTIONS = 200  # per process; past it, commands wait for a free connection (up to POOL_WAIT)
POOL_WAIT = 5.0
# A command is tried three times, 0-0.1 s then 0-0.2 s apart: after Redis restarts, a pooled
# connection that the pool did not see close (it checks for one closed, not for one that died
# unseen, as behind a failed-over address) fails once, and the retry reconnects it, so the first
# writes after a restart succeed; while Redis is down, the answer (a 503, or a fallback) comes in
# well under a second.
RETRIES = 2
BACKOFF = ExponentialWithJitterBackoff(cap=0.2, base=0.05)
# A Redis that stops answering (not refusing) is given up on after this many seconds per try; our
# commands are small, and Pub/Sub's blocking reads are exempt (redis-py waits for them unbounded).
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
# An idle connection is PINGed before use after this many seconds: a link a proxy or a NAT dropped
# silently is found before a command is lost on it (and reconnected by the retry).
HEALTH_CHECK_INTERVAL = 30


def make_redis(url: str | None) -> Redis | None:
    """A client whose pool makes a burst wait for a connection instead of failing with
    "Too many connections" (the plain pool's answer past its limit)."""
    if not url:
        return None
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        decode_responses=False,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(BACKOFF, RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return Redis.from_pool(pool)
