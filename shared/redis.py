"""A Redis client with short timeouts: Redis is a cache here, and a slow cache must not stall a
request. Callers treat ``redis.RedisError`` as "cache unavailable" and carry on."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    import redis


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis | None:
    """The configured Redis, or None when ``REDIS_URL`` is unset."""
    settings = get_settings()
    url = settings.redis_url
    if not url:
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    tls: dict[str, str] = {}
    if url.startswith("rediss://") and settings.redis_ca_cert:
        tls["ssl_ca_data"] = settings.redis_ca_cert
    return redis.Redis.from_url(
        url,
        **tls,
        socket_connect_timeout=0.25,
        socket_timeout=0.25,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),  # a cache miss beats a retried timeout
    )


def reset_clients() -> None:
    get_redis.cache_clear()
