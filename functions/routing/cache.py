"""Two-tier cache: L1 in process (LRU with size and TTL bounds), L2 in Redis (shared, longer TTL).

Cached: what costs more to recompute than to look up across instances: inferences of repeated
messages, recommendations, bulk items. Routing decisions are not cached: all 216 are precomputed.

Redis is optional. When it errors, L2 is skipped for ``ION_REDIS_RETRY_SECONDS`` (a dead Redis
then costs nothing per request instead of a timeout), the function keeps serving from L1, the
gauge ``ion.cache.l2.available`` drops to 0 and lookups count as ``result=unavailable``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

    from functions.routing.metrics import RoutingMetrics

log = get_logger("routing.cache")

PREFIX = "ion:routing:cache:"


def content_key(*parts: str) -> str:
    """A fixed-size key for arbitrary text (messages can be long; Redis keys should not be)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class _CountingTTLCache(TTLCache):  # type: ignore[type-arg]
    """cachetools' TTL LRU, telling us what it drops and why."""

    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float], on_evict: Callable[..., None]):
        super().__init__(maxsize, ttl, timer)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self._on_evict(key, "size")
        return key, value

    def expire(self, time: float | None = None) -> list[tuple[Any, Any]]:
        expired = super().expire(time)
        for key, _ in expired:
            self._on_evict(key, "expired")
        return expired


class TwoTierCache:
    def __init__(
        self,
        metrics: RoutingMetrics,
        *,
        l1_max_items: int,
        l1_ttl_seconds: float,
        l2_ttl_seconds: int,
        redis_retry_seconds: float,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._l1 = _CountingTTLCache(l1_max_items, l1_ttl_seconds, timer, self._evicted)
        self._l2_ttl = l2_ttl_seconds
        self._retry = redis_retry_seconds
        self._redis_client = redis_client
        self._timer = timer
        self._l2_down_until = 0.0
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self.l2_last_error: str | None = None

    # L1 ----------------------------------------------------------------------------------------

    def _evicted(self, key: tuple[str, str], reason: str) -> None:
        self._metrics.cache_evictions.add(1, (("tier", "l1"), ("endpoint", key[0]), ("reason", reason)))

    def _l1_get(self, endpoint: str, key: str) -> Any | None:
        with self._lock:
            value = self._l1.get((endpoint, key))
        self._count("l1", "hit" if value is not None else "miss", endpoint)
        return value

    def _l1_put(self, endpoint: str, key: str, value: Any) -> None:
        with self._lock:
            self._l1[(endpoint, key)] = value

    def l1_size(self) -> int:
        with self._lock:
            self._l1.expire()
            return len(self._l1)

    def _count(self, tier: str, result: str, endpoint: str, n: int = 1) -> None:
        if n:
            self._metrics.cache_requests.add(n, (("tier", tier), ("result", result), ("endpoint", endpoint)))

    # L2 ----------------------------------------------------------------------------------------

    def _redis(self) -> redis.Redis | None:
        """The Redis client, or None while L2 is off (not configured, or down and not yet retried)."""
        if self._timer() < self._l2_down_until:
            return None
        client = self._redis_client()
        if client is not None and len(self._errors) == 1:
            import redis  # already loaded by the client; its errors are what a dead Redis raises

            self._errors = (redis.RedisError, OSError)
        return client

    def l2_configured(self) -> bool:
        return self._redis_client() is not None

    def l2_available(self) -> bool:
        return self.l2_configured() and self._timer() >= self._l2_down_until

    def _l2_failed(self, exc: BaseException) -> None:
        was_up = self._timer() >= self._l2_down_until
        self._l2_down_until = self._timer() + self._retry
        self.l2_last_error = repr(exc)
        self._metrics.l2_available.set(0)
        if was_up:
            log.warning(
                "L2 cache (Redis) unavailable; serving from L1",
                extra={"error": repr(exc), "retry_seconds": self._retry},
            )

    def _l2_ok(self) -> None:
        if self.l2_last_error is not None:
            log.info("L2 cache (Redis) is back")
            self.l2_last_error = None
        self._metrics.l2_available.set(1)

    def _l2_skipped(self, endpoint: str, n: int) -> None:
        if self.l2_configured():
            self._count("l2", "unavailable", endpoint, n)

    # Public ------------------------------------------------------------------------------------

    def get(self, endpoint: str, key: str) -> Any | None:
        value = self._l1_get(endpoint, key)
        if value is not None:
            return value
        client = self._redis()
        if client is None:
            self._l2_skipped(endpoint, 1)
            return None
        try:
            raw = client.get(PREFIX + endpoint + ":" + key)
        except self._errors as exc:
            self._l2_failed(exc)
            self._count("l2", "unavailable", endpoint)
            return None
        self._l2_ok()
        if raw is None:
            self._count("l2", "miss", endpoint)
            return None
        self._count("l2", "hit", endpoint)
        value = json.loads(raw)
        self._l1_put(endpoint, key, value)  # promote: the next lookup here stays in process
        return value

    def put(self, endpoint: str, key: str, value: Any) -> None:
        self._l1_put(endpoint, key, value)
        client = self._redis()
        if client is None:
            return
        try:
            client.set(PREFIX + endpoint + ":" + key, json.dumps(value), ex=self._l2_ttl)
        except self._errors as exc:
            self._l2_failed(exc)
        else:
            self._l2_ok()

    def get_many(self, endpoint: str, keys: Iterable[str]) -> dict[str, Any]:
        """Values found for ``keys``: L1 first, then one MGET for the rest."""
        found: dict[str, Any] = {}
        missing: list[str] = []
        with self._lock:
            for key in dict.fromkeys(keys):
                value = self._l1.get((endpoint, key))
                if value is None:
                    missing.append(key)
                else:
                    found[key] = value
        self._count("l1", "hit", endpoint, len(found))
        self._count("l1", "miss", endpoint, len(missing))
        if not missing:
            return found
        client = self._redis()
        if client is None:
            self._l2_skipped(endpoint, len(missing))
            return found
        try:
            raws = client.mget([PREFIX + endpoint + ":" + key for key in missing])
        except self._errors as exc:
            self._l2_failed(exc)
            self._count("l2", "unavailable", endpoint, len(missing))
            return found
        self._l2_ok()
        hits = 0
        for key, raw in zip(missing, raws, strict=True):
            if raw is not None:
                hits += 1
                found[key] = value = json.loads(raw)
                self._l1_put(endpoint, key, value)
        self._count("l2", "hit", endpoint, hits)
        self._count("l2", "miss", endpoint, len(missing) - hits)
        return found

    def put_many(self, endpoint: str, items: dict[str, Any]) -> None:
        if not items:
            return
        for key, value in items.items():
            self._l1_put(endpoint, key, value)
        client = self._redis()
        if client is None:
            return
        try:
            with client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(PREFIX + endpoint + ":" + key, json.dumps(value), ex=self._l2_ttl)
                pipe.execute()
        except self._errors as exc:
            self._l2_failed(exc)
        else:
            self._l2_ok()

    def warm(self, limit: int) -> int:
        """Fill L1 from L2 (what other instances computed recently), up to ``limit`` items."""
        client = self._redis()
        if client is None or limit <= 0:
            return 0
        loaded = 0
        try:
            cursor = 0
            while loaded < limit:
                cursor, names = client.scan(cursor, match=PREFIX + "*", count=min(500, limit))
                names = names[: limit - loaded]
                if names:
                    for name, raw in zip(names, client.mget(names), strict=True):
                        if raw is None:
                            continue
                        endpoint, _, key = name.decode()[len(PREFIX) :].partition(":")
                        self._l1_put(endpoint, key, json.loads(raw))
                        loaded += 1
                if cursor == 0:
                    break
        except self._errors as exc:
            self._l2_failed(exc)
            return loaded
        self._l2_ok()
        return loaded
