"""The optional shared Redis connection; absent in the embedded default."""

from redis.asyncio import Redis


def make_redis(url: str | None) -> Redis | None:
    if not url:
        return None
    return Redis.from_url(url, decode_responses=False, health_check_interval=30)
