"""The optional shared Redis connection; absent in the embedded default."""

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 200  # per process; past it, commands wait for a free connection (up to POOL_WAIT)
POOL_WAIT = 5.0


def make_redis(url: str | None) -> Redis | None:
    """A client whose pool makes a burst wait for a connection instead of failing with
    "Too many connections" (the plain pool's answer past its limit)."""
    if not url:
        return None
    pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT,
                                           decode_responses=False, health_check_interval=30)
    return Redis.from_pool(pool)
