"""Repeated authentication failures are limited: a request refused for its API key (missing,
unknown, forged, revoked) costs a token from a failure bucket of its client address and, for a
customer-shaped key, one of its key id prefix (the first 4 hex characters of the key id). Once
either bucket is empty, such requests are answered 429 with ``Retry-After`` instead of 401 until
it refills (``ION_AUTH_FAILURE_LIMIT`` failures, refilled over ``ION_AUTH_FAILURE_WINDOW_SECONDS``).

Only failures are counted and only failures are refused: a valid key is never turned away by
this limit, so neither a neighbour behind the same address nor someone who knows a key id (key
ids are logged) can lock a customer out.

The buckets live in Redis when it is configured (one script takes from both, so the limit holds
across instances, timed by Redis's clock), in process otherwise or while Redis is down. The 401
path stays cheap: no Firestore, at most one Redis round trip per refused request, none once this
instance has seen the client refused (it remembers until when, in a bounded map).

The client address is one entry of ``X-Forwarded-For`` (``ION_CLIENT_IP_HOP``, Python indexing):
by default the last, the address Google's front end appends for a request to the function's own
URL, which a client cannot choose. 0 is the first entry, which the client can write itself when a
front end appends rather than replaces. An IPv6 client counts by its /64.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

log = get_logger("routing.auth_failures")

# KEYS: the buckets; ARGV rate (tokens/s), burst. Takes a token from each bucket that has one and
# returns, per bucket, 0 when it had one, else the seconds until it has.
FAILURE_BUCKETS_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local waits = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens >= 1 then
    tokens = tokens - 1
    waits[i] = '0'
  else
    waits[i] = tostring((1 - tokens) / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
end
return waits
"""

REDIS_PREFIX = "ion:routing:authfail:"
MAX_TRACKED = 10_000
# The key-id bucket is the key id's first 4 hex characters: at most 65,536 buckets whatever key
# ids a client invents, and guesses at one real key id from many addresses still share one.
KEY_ID_PREFIX_HEX = 4


def subjects(client: str, key_id: str | None) -> list[str]:
    """The failure buckets a refused request counts against: its client address and, for a
    customer-shaped key, its key id prefix."""
    return [f"ip:{client}", *([f"key:{key_id[:KEY_ID_PREFIX_HEX]}"] if key_id else [])]


def client_address(forwarded_for: str | None, remote_addr: str | None, hop: int = -1) -> str:
    """The client of a request: entry ``hop`` of ``X-Forwarded-For`` (clamped to the entries
    there are), else the peer address; an IPv6 address as its /64, anything unparsable as
    ``unknown``."""
    hops = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    if hops:
        raw = hops[min(hop, len(hops) - 1)] if hop >= 0 else hops[max(hop, -len(hops))]
    else:
        raw = remote_addr or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


def _bounded(table: dict[str, Any], now: float, alive: Callable[[Any], bool]) -> None:
    """Keep ``table`` under ``MAX_TRACKED``: drop what is no longer alive and, if that freed less
    than a quarter, the oldest entries down to half (so a full table costs one scan per
    ``MAX_TRACKED / 4`` new subjects at most)."""
    if len(table) < MAX_TRACKED:
        return
    for name in [name for name, value in table.items() if not alive(value)]:
        del table[name]
    if len(table) > MAX_TRACKED * 3 // 4:
        for name in list(table)[: len(table) - MAX_TRACKED // 2]:
            del table[name]


class FailureLimiter:
    """Failure buckets per subject (``ip:<address>``, ``key:<key id>``)."""

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        retry_seconds: float = 5.0,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._rate = limit / window_seconds
        self._redis_client = redis_client
        self._script: Any = None
        self._lock = threading.Lock()
        self._blocked: dict[str, float] = {}  # subject -> monotonic time its bucket has a token
        self._local: dict[str, _Bucket] = {}
        self._redis_down_until = 0.0
        self._retry_seconds = retry_seconds

    def blocked(self, subjects: Iterable[str]) -> float:
        """Seconds until every one of ``subjects`` may fail again, as this instance last heard
        (0: none is known to be blocked). No I/O."""
        now = time.monotonic()
        with self._lock:
            if not self._blocked:
                return 0.0
            return max(0.0, *(self._blocked.get(s, 0.0) - now for s in subjects))

    def charge(self, subjects: list[str]) -> float:
        """Count one failure against each subject: 0 when every bucket had a token, else the
        seconds until the emptiest has one."""
        wait = self.blocked(subjects)
        if wait > 0:
            return wait
        waits = self._charge_redis(subjects)
        if waits is None:
            waits = self._charge_local(subjects)
        now = time.monotonic()
        if any(w > 0 for w in waits):
            with self._lock:
                for subject, w in zip(subjects, waits, strict=True):
                    if w > 0:
                        self._blocked[subject] = now + w
                _bounded(self._blocked, now, lambda until: until > now)
        return max(waits, default=0.0)

    def _charge_redis(self, subjects: list[str]) -> list[float] | None:
        now = time.monotonic()
        client = self._redis_client() if now >= self._redis_down_until else None
        if client is None:
            return None
        try:
            if self._script is None:
                self._script = client.register_script(FAILURE_BUCKETS_LUA)
            waits = self._script(keys=[REDIS_PREFIX + s for s in subjects], args=[self._rate, self.limit])
            return [float(w) for w in waits]
        except Exception as exc:  # noqa: BLE001 - redis errors: count per instance meanwhile
            self._redis_down_until = now + self._retry_seconds
            log.warning(
                "failure limit store unavailable; counting per instance",
                extra={"error": repr(exc), "retry_seconds": self._retry_seconds},
            )
            return None

    def _charge_local(self, subjects: list[str]) -> list[float]:
        now = time.monotonic()
        waits = []
        with self._lock:
            for subject in subjects:
                bucket = self._local.get(subject)
                if bucket is None:
                    _bounded(self._local, now, lambda b: b.tokens + (now - b.stamp) * self._rate < self.limit)
                    bucket = self._local[subject] = _Bucket(float(self.limit), now)
                bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.stamp) * self._rate)
                bucket.stamp = now
                if bucket.tokens >= 1:
                    bucket.tokens -= 1
                    waits.append(0.0)
                else:
                    waits.append((1 - bucket.tokens) / self._rate)
        return waits

    def describe(self) -> str:
        return f"{self.limit} refused requests per {self.window_seconds:g} s"


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))
