"""API keys and a per-key rate limit.

With ``ION_API_KEYS`` unset the API is open. Set (comma-separated), a request needs a valid
``X-API-Key``: compared with every configured key in constant time (``hmac.compare_digest``, no
early exit), so timing tells nothing about which key or how much of it matched.

The rate limit is a token bucket per key (``ION_RATE_LIMIT_PER_SECOND`` refill,
``ION_RATE_LIMIT_BURST`` capacity) kept in Redis and updated by one Lua script, atomic across
instances, timed by Redis's own clock. Redis down: each instance keeps a local bucket with the
same numbers (a looser limit, but never an outage). Redis keys name a hash of the API key, never
the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

    from functions.routing.metrics import RoutingMetrics

log = get_logger("routing.auth")

# KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns {allowed 0|1, retry_after_s, tokens_left}.
TOKEN_BUCKET_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(retry), tostring(tokens)}
"""


class AccessDenied(Exception):
    """No valid API key: the answer is 401 with ``headers``."""

    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class RateLimited(Exception):
    """The key's bucket is empty: the answer is 429 with ``headers``, retry in ``retry_after`` s."""

    def __init__(self, detail: str, headers: dict[str, str], retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float
    remaining: float


class _LocalBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class ApiKeyGuard:
    def __init__(
        self,
        keys: list[str],
        *,
        rate: float,
        burst: int,
        metrics: RoutingMetrics,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
    ) -> None:
        self._keys = [key.encode() for key in keys]
        self._rate = rate
        self._burst = burst
        self._metrics = metrics
        self._redis_client = redis_client
        self._script: Any = None
        self._local: dict[str, _LocalBucket] = {}
        self._lock = threading.Lock()
        self._redis_down_until = 0.0
        self.retry_seconds = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> str:
        """The bucket id of a valid key; raises ``AccessDenied`` otherwise."""
        candidate = (presented or "").encode()
        valid = False
        for key in self._keys:  # every key compared, whatever matched before
            valid |= hmac.compare_digest(candidate, key)
        if not valid:
            self._metrics.rejected.add(1, (("reason", "api_key"),))
            raise AccessDenied(
                "A valid API key is required in the X-API-Key header."
                if presented
                else "Missing X-API-Key header.",
                headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
            )
        return hashlib.sha256(candidate).hexdigest()[:24]

    def check(self, presented: str | None) -> dict[str, str]:
        """Headers to add to the answer for the ``X-API-Key`` presented; raises ``AccessDenied``
        or ``RateLimited``."""
        bucket = self.authenticate(presented)
        verdict = self._take(bucket)
        headers = {"RateLimit-Limit": str(self._burst), "RateLimit-Remaining": str(int(verdict.remaining))}
        if not verdict.allowed:
            self._metrics.rejected.add(1, (("reason", "rate_limit"),))
            retry = max(1, math.ceil(verdict.retry_after))
            raise RateLimited(
                f"Rate limit of {self._rate:g} requests/s (burst {self._burst}) exceeded for this key; "
                f"retry in {retry} s.",
                headers={**headers, "Retry-After": str(retry)},
                retry_after=retry,
            )
        return headers

    def _take(self, bucket: str) -> Verdict:
        client = self._redis_client() if time.monotonic() >= self._redis_down_until else None
        if client is not None:
            try:
                if self._script is None:
                    self._script = client.register_script(TOKEN_BUCKET_LUA)
                allowed, retry, left = self._script(
                    keys=[f"ion:routing:ratelimit:{bucket}"], args=[self._rate, self._burst]
                )
                return Verdict(bool(int(allowed)), float(retry), float(left))
            except Exception as exc:  # noqa: BLE001 - redis errors: fall back to a local bucket
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "rate limit store unavailable; limiting per instance",
                    extra={"error": repr(exc), "retry_seconds": self.retry_seconds},
                )
        return self._take_local(bucket)

    def _take_local(self, bucket: str) -> Verdict:
        now = time.monotonic()
        with self._lock:
            state = self._local.get(bucket)
            if state is None:
                state = self._local[bucket] = _LocalBucket(float(self._burst), now)
            state.tokens = min(self._burst, state.tokens + (now - state.stamp) * self._rate)
            state.stamp = now
            if state.tokens >= 1:
                state.tokens -= 1
                return Verdict(True, 0.0, state.tokens)
            return Verdict(False, (1 - state.tokens) / self._rate, state.tokens)
