"""API keys and a per-key rate limit.

With ``ION_API_KEYS`` unset the API is open. Set (comma-separated), a request needs a valid
``X-API-Key``: compared with every configured key in constant time (``hmac.compare_digest``, no
early exit), so timing tells nothing about which key or how much of it matched.

The rate limit is a token bucket per key (``ION_RATE_LIMIT_PER_SECOND`` refill,
``ION_RATE_LIMIT_BURST`` capacity) kept in Redis and updated by one Lua script, atomic across
instances, timed by Redis's own clock. An instance takes tokens from Redis a few at a time (a
*lease*: ``ION_RATE_LIMIT_LEASE_TOKENS``, by default a tenth of a second of the rate and at most a
tenth of the burst) and spends them locally for at most ``ION_RATE_LIMIT_LEASE_SECONDS``, so most
requests cost no Redis round trip. A lease spent down to half is refilled by a thread of the
guard's own (one for all keys, one refill in flight per key) before it runs out, so a key whose
limit fits its traffic waits for Redis only when the refill is late (a request that finds the
lease empty asks Redis itself; one that Redis refuses while the refill is in flight waits for the
tokens the refill took). Tokens are taken before they are spent, so the limit across instances
is never exceeded; a lease left unspent is forfeited (stricter, by at most a lease and a half per
instance). A refusal is remembered too, and so is an admission that leaves the bucket under a
token: Redis said when the bucket's next token is due, so until then the instance refuses the key
without asking again (the time is counted from before the question was sent, so never later than
Redis would allow); then the first request asks for that token, and those arriving while it asks
are refused here, as no second token is due before 1/rate later. Redis down: each instance keeps
a local bucket with the same numbers (a looser limit, but never an outage). Redis keys name a hash
of the API key, never the key itself.

Customer keys (issued by the health capability) are screened (their HMAC tag, no I/O) and then
resolved by ``customer_keys.py``, and have their own rate-limit bucket each.

A request refused for its key counts against the failure limits of its client address and its key
id prefix (``auth_failures.py``): past either, 429 with ``Retry-After`` instead of 401. Valid keys
never count.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.routing.auth_failures import FailureLimiter, retry_after, subjects
from functions.routing.customer_keys import CustomerKeys, CustomerKeySettings, KeyRefused
from shared import customer_keys as ck
from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

    from functions.routing.metrics import RoutingMetrics

log = get_logger("routing.auth")

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost (tokens needed now, 1 unless given), lease
# (extra tokens wanted for later, 0 for none). Returns {allowed 0|1, retry_after_s, tokens_left,
# tokens_granted}: at least ``cost`` when allowed, plus as much of the lease as the bucket holds.
TOKEN_BUCKET_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]) or 1
local lease = tonumber(ARGV[4]) or 0
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
local granted = 0
if tokens >= cost then
  granted = cost + math.max(0, math.min(lease, math.floor(tokens - cost)))
  tokens = tokens - granted
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(retry), tostring(tokens), granted}
"""


_CHALLENGE = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}


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
        self.customer: str | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__
class Verdict:
    allowed: bool
    retry_after: float
    remaining: float


class _Lease:
    """Tokens taken from Redis ahead of need, spent here until ``expires`` (monotonic). At
    ``refill_at`` tokens or fewer a refill is started in the background; -1 while one is in flight
    or after one found Redis short (then the next request that finds the lease empty asks)."""

    __slots__ = ("expires", "refill_at", "remote_left", "tokens")

    def __init__(self, tokens: float, expires: float, remote_left: float, refill_at: float) -> None:
        self.tokens = tokens
        self.expires = expires
        self.remote_left = remote_left
        self.refill_at = refill_at


MAX_LEASES = 10_000
# Every guard made in this process (one per instance; tests make many), so that background refills
# can be waited for before Redis is emptied under them (``settle_refills``).
_GUARDS: weakref.WeakSet[ApiKeyGuard] = weakref.WeakSet()
_REFILLING = -2.0  # a lease's ``refill_at`` while its refill is queued or in flight


def lease_size(rate: float, burst: int, configured: int) -> int:
    """Tokens an instance takes beyond a request's own: ``configured`` when set (1: no lease),
    else a tenth of a second of the rate, at most a tenth of the burst."""
    if configured > 0:
        return configured - 1
    return max(0, int(min(rate * 0.1, burst / 10)) - 1)


class _BucketScript:
    """The token bucket script, run with EVALSHA on a Redis connection of the calling thread's
    own (made like the client's pool makes them: same class, settings and TLS).

    redis-py's ``Script`` call goes through ``execute_command``: its retry wrapper, observability
    hooks, and the pool's checkout, which polls the socket before every command; about 165
    Python calls a round trip, against about 50 here. A connection that failed in any way is
    closed (a late reply can never be read as the next one's) and opened again on next use."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by SHA-1
        self._local = threading.local()
        self._no_script: type[Exception] | None = None  # redis's NoScriptError, once redis is loaded

    def __call__(self, client: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        local = self._local
        pool = client.connection_pool
        connection = getattr(local, "connection", None)
        if connection is None or local.pool is not pool:
            if connection is not None:
                connection.disconnect()
            connection = local.connection = pool.connection_class(**pool.connection_kwargs)
            local.pool = pool
            from redis.exceptions import NoScriptError

            self._no_script = NoScriptError
        no_script = self._no_script
        assert no_script is not None
        try:
            try:
                connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                return connection.read_response()
            except no_script:  # a Redis that restarted or was flushed: load it, once
                connection.send_command("SCRIPT", "LOAD", self._source)
                connection.read_response()
                connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                return connection.read_response()
        except BaseException:
            connection.disconnect()
            raise


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
        customer_keys: CustomerKeys | None = None,
        lease_tokens: int = 0,
        lease_seconds: float = 1.0,
        failures: FailureLimiter | None = None,
    ) -> None:
        self._keys = [key.encode() for key in keys]
        # Each operator key's bucket id, worked out once (not a SHA-256 per request).
        self._bucket_ids = {key: hashlib.sha256(key).hexdigest()[:24] for key in self._keys}
        self._rate = rate
        self._burst = burst
        self._burst_text = str(burst)
        self._metrics = metrics
        self._redis_client = redis_client
        self._script = _BucketScript(TOKEN_BUCKET_LUA)
        self._local: dict[str, _LocalBucket] = {}
        self._lease_extra = lease_size(rate, burst, lease_tokens)
        self._lease_seconds = lease_seconds
        self._leases: dict[str, _Lease] = {}
        # A lease down to half its size is refilled by one thread of this guard's own, before it
        # runs out, so that a key's requests do not wait for Redis (none without a lease).
        self._refill_at = self._lease_extra // 2 if self._lease_extra >= 2 else -1
        self._refills: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._refiller: threading.Thread | None = None
        self.refill_idle_seconds = 60.0  # the refilling thread ends after this long without work
        self.refill_wait_seconds = 1.0  # a request waits this long at most for a refill in flight
        # Bucket => monotonic time before which Redis has no token for it (a refusal remembered).
        self._empty_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._refilled = threading.Condition(self._lock)  # a refill landed (or failed)
        self._refill_waiters = 0  # requests waiting on it (counted under the lock)
        _GUARDS.add(self)
        self._redis_down_until = 0.0
        self.retry_seconds = 5.0
        self.failures = failures
        settings = CustomerKeySettings()
        self.customer_keys = customer_keys or (
            CustomerKeys(settings, redis_client=redis_client) if settings.enabled else None
        )

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
            raise AccessDenied(
                "A valid API key is required in the X-API-Key header."
                if presented
                else "Missing X-API-Key header.",
                headers=_CHALLENGE,
            )
        return self._bucket_ids[candidate]

    def check(self, presented: str | None) -> dict[str, str]:
        """Headers to add to the answer for the operator ``X-API-Key`` presented; raises
        ``AccessDenied`` or ``RateLimited``."""
        return self._limit(self.authenticate(presented))

    def applies(self, presented: str | None) -> bool:
        """Whether a request must pass :meth:`admit`: operator keys are configured, or it presents
        a customer key (an open API still attributes and limits customer traffic)."""
        if self._keys:
            return True
        return bool(presented and self.customer_keys is not None and presented.startswith(ck.KEY_PREFIX))

    def admit(
        self, presented: str | None, client: str | Callable[[], str] = "unknown"
    ) -> tuple[dict[str, str], str | None]:
        """(headers, customer id or None) for an operator or customer key from ``client`` (its
        address, see ``auth_failures.client_address``, or a function giving it: only a refused or
        legacy key needs it, so an accepted one does not pay for parsing it); raises
        ``AccessDenied``, ``RateLimited`` (its ``customer`` set for a customer key; also when
        ``client`` or the key id prefix has had too many refusals) or ``KeyStoreUnavailable``."""
        try:
            if self.customer_keys is None or not (presented and presented.startswith(ck.KEY_PREFIX)):
                return self._limit(self.authenticate(presented)), None  # an operator key
            return self._admit_customer(presented, client)
        except AccessDenied as denied:
            raise self._refused(denied, presented, client) from None

    def _admit_customer(
        self, presented: str, client: str | Callable[[], str]
    ) -> tuple[dict[str, str], str | None]:
        assert self.customer_keys is not None
        try:
            key = self.customer_keys.screen(presented)
        except KeyRefused as refused:
            raise AccessDenied(
                "This customer API key was issued before keys were signed and is no longer accepted; "
                "ask for a new key."
                if refused.reason == "legacy"
                else "This customer API key is not valid.",
                headers=_CHALLENGE,
            ) from None
        if key is None:  # not customer-shaped after all: an operator key starting with ion_
            return self.check(presented), None
        if key.legacy and self.failures is not None:
            # Inside the migration window a legacy key costs a lookup: none for a client already
            # refused for too many failures (this instance's memory; no I/O).
            wait = self.failures.blocked(subjects(_address(client), key.key_id))
            if wait > 0:
                raise self._too_many_failures(wait)
        customer = self.customer_keys.lookup(key, presented)
        if customer is None:
            raise AccessDenied("This customer API key is unknown or revoked.", headers=_CHALLENGE)
        try:
            return self._limit(self.bucket_of(presented)), customer
        except RateLimited as limited:
            limited.customer = customer
            raise

    def _refused(
        self, denied: AccessDenied, presented: str | None, client: str | Callable[[], str]
    ) -> Exception:
        """What to raise for a refused key: ``denied`` (401), or ``RateLimited`` (429) once the
        client address or the key id prefix has had too many refusals."""
        if self.failures is None:
            self._metrics.rejected.add(1, (("reason", "api_key"),))
            return denied
        wait = self.failures.charge(
            subjects(_address(client), ck.key_id_of(presented) if presented else None)
        )
        if wait <= 0:
            self._metrics.rejected.add(1, (("reason", "api_key"),))
            return denied
        return self._too_many_failures(wait)

    def _too_many_failures(self, wait: float) -> RateLimited:
        assert self.failures is not None
        self._metrics.rejected.add(1, (("reason", "rate_limit"),))
        retry = retry_after(wait)
        return RateLimited(
            f"Too many requests refused for their API key from this client or with this key id prefix "
            f"(at most {self.failures.describe()}); retry in {retry} s with a valid X-API-Key.",
            headers={"Retry-After": str(retry)},
            retry_after=retry,
        )

    def bucket_of(self, presented: str | None) -> str:
        """The rate-limit bucket of a key that :meth:`admit` accepted."""
        if presented and self.customer_keys is not None and presented.startswith(ck.KEY_PREFIX):
            return "customer:" + presented[len(ck.KEY_PREFIX) : len(ck.KEY_PREFIX) + ck.KEY_ID_HEX]
        return hashlib.sha256((presented or "").encode()).hexdigest()[:24]

    def charge_items(self, presented: str | None, items: int) -> dict[str, str]:
        """A request of ``items`` items costs one token per item: take the ``items`` - 1 not
        taken when :meth:`admit` accepted the key; raises ``RateLimited``."""
        if items > self._burst:
            self._metrics.rejected.add(1, (("reason", "rate_limit"),))
            raise RateLimited(
                f"This request of {items} items costs {items} rate-limit tokens, more than the burst "
                f"of {self._burst}; "
                f"send at most {self._burst} items per request.",
                headers={"RateLimit-Limit": str(self._burst)},
                retry_after=0,
            )
        return self._limit(self.bucket_of(presented), items - 1) if items > 1 else {}

    def _limit(self, bucket: str, cost: int = 1) -> dict[str, str]:
        verdict = self._take(bucket, cost)
        headers = {"RateLimit-Limit": self._burst_text, "RateLimit-Remaining": str(int(verdict.remaining))}
        if not verdict.allowed:
            self._metrics.rejected.add(1, (("reason", "rate_limit"),))
            retry = max(1, math.ceil(verdict.retry_after))
            raise RateLimited(
                f"Rate limit of {self._rate:g} tokens/s (burst {self._burst}; one token per request, "
                f"one per item of a bulk request) exceeded for this key; "
                f"retry in {retry} s.",
                headers={**headers, "Retry-After": str(retry)},
                retry_after=retry,
            )
        return headers

    def _take(self, bucket: str, cost: int = 1) -> Verdict:
        now = time.monotonic()
        with self._lock:
            if self._lease_extra:  # tokens already taken from Redis are spent first
                lease = self._leases.get(bucket)
                if lease is not None and lease.expires > now and lease.tokens >= cost:
                    lease.tokens -= cost
                    if lease.tokens <= lease.refill_at:
                        self._start_refill(bucket, lease)
                    return Verdict(True, 0.0, lease.remote_left + lease.tokens)
            claim = None
            empty_until = self._empty_until.get(bucket)
            if empty_until is not None:
                if now < empty_until:  # Redis said no token before then: no need to ask again
                    return self._unless_refilling(bucket, cost, Verdict(False, empty_until - now, 0.0))
                # The token due then is this request's to ask for; the next is due 1/rate later.
                # Until then the requests arriving while it asks are refused here: otherwise each
                # thread in flight asked Redis when a remembered refusal ran out (~4 round trips
                # per token of a key over its limit, under wrk).
                claim = empty_until + 1 / self._rate
                if claim > now:
                    self._empty_until[bucket] = claim
                else:
                    del self._empty_until[bucket]
                    claim = None
        client = self._redis_client() if now >= self._redis_down_until else None
        if client is not None:
            try:
                allowed, retry, left, granted = self._script(
                    client,
                    [f"ion:routing:ratelimit:{bucket}"],
                    [self._rate, self._burst, cost, self._lease_extra],
                )
                remaining = float(left)
                if not int(allowed):
                    if cost == 1:
                        # Fewer than one token at Redis's clock, which read after ``now``: none
                        # here before now + retry either (other instances only take tokens).
                        self._remember_empty(bucket, now + float(retry), now)
                    elif claim is not None:  # a bulk refused took no token: the claimed one is there
                        self._forget_claim(bucket, claim)
                    with self._lock:
                        return self._unless_refilling(bucket, cost, Verdict(False, float(retry), remaining))
                if self._lease_extra:
                    with self._lock:
                        held = self._leases.get(bucket)
                        kept = held.tokens if held is not None and held.expires > now else 0.0
                        # A refill still in flight lands in this lease: none other is started.
                        refilling = held is not None and held.refill_at == _REFILLING
                        lease = self._leases[bucket] = _Lease(
                            kept + int(granted) - cost,
                            now + self._lease_seconds,
                            remaining,
                            _REFILLING if refilling else self._refill_at,
                        )
                        remaining += lease.tokens
                        if len(self._leases) > MAX_LEASES:  # one per key seen: drop the expired
                            self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
                if remaining < 1:
                    # Admitted, and Redis has less than a token left: as after a refusal, none here
                    # before it refills one (a key over its limit cost a round trip per admitted
                    # request and another for the request refused right after).
                    self._remember_empty(bucket, now + (1 - remaining) / self._rate, now)
                elif claim is not None:  # Redis has tokens to spare: nothing is refused here
                    self._forget_claim(bucket, claim)
                return Verdict(True, float(retry), remaining)
            except Exception as exc:  # noqa: BLE001 - redis errors: fall back to a local bucket
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "rate limit store unavailable; limiting per instance",
                    extra={"error": repr(exc), "retry_seconds": self.retry_seconds},
                )
        if claim is not None:  # the local bucket decides, not a claim on Redis's token
            self._forget_claim(bucket, claim)
        return self._take_local(bucket, cost)

    @property
    def refills_pending(self) -> int:
        """Leases of this guard with a refill queued or in flight."""
        with self._lock:
            return sum(1 for lease in self._leases.values() if lease.refill_at == _REFILLING)

    def _start_refill(self, bucket: str, lease: _Lease) -> None:
        """Queue a refill of ``bucket``'s lease (called holding the lock): one in flight per lease,
        one thread for all of them, started when needed."""
        lease.refill_at = _REFILLING
        self._refills.put(bucket)
        if self._refiller is None:
            self._refiller = threading.Thread(target=self._refill_loop, name="ratelimit-refill", daemon=True)
            self._refiller.start()

    def _unless_refilling(self, bucket: str, cost: int, refusal: Verdict) -> Verdict:
        """``refusal``, unless a refill of ``bucket``'s lease is in flight (called holding the lock):
        Redis may be empty because the refill took its tokens, so they are waited for (bounded)
        and spent here. Only a request Redis refused waits: one that finds the lease empty asks
        Redis itself, as waiting for one refill to serve every thread convoyed them behind it."""
        lease = self._leases.get(bucket)
        if lease is None or (lease.refill_at != _REFILLING and lease.tokens < cost):
            return refusal  # the common case: no lease, or an empty one with nothing coming
        return self._after_refill(bucket, cost) or refusal

    def _after_refill(self, bucket: str, cost: int) -> Verdict | None:
        """Called holding the lock: waits (bounded) for ``bucket``'s refill if one is in flight,
        and spends from the lease (a refill may also have landed since Redis answered); None when
        it has too few tokens or the refill is late."""

        def landed() -> bool:
            lease = self._leases.get(bucket)
            return lease is None or lease.refill_at != _REFILLING

        if not landed():
            self._refill_waiters += 1
            try:
                self._refilled.wait_for(landed, self.refill_wait_seconds)
            finally:
                self._refill_waiters -= 1
        lease = self._leases.get(bucket)
        if lease is not None and lease.expires > time.monotonic() and lease.tokens >= cost:
            lease.tokens -= cost
            if lease.tokens <= lease.refill_at:
                self._start_refill(bucket, lease)
            return Verdict(True, 0.0, lease.remote_left + lease.tokens)
        return None

    def _refill_loop(self) -> None:
        while True:
            try:
                bucket = self._refills.get(timeout=self.refill_idle_seconds)
            except queue.Empty:
                with self._lock:  # buckets are queued holding the lock: none can be missed
                    if self._refills.empty():
                        self._refiller = None
                        return
                continue
            try:
                self._refill(bucket)
            except Exception:  # never leave a lease waiting on a refill that died
                log.exception("rate limit lease refill failed", extra={"bucket": bucket})
                with self._lock:
                    lease = self._leases.get(bucket)
                    if lease is not None and lease.refill_at == _REFILLING:
                        lease.refill_at = -1
                    self._refilled.notify_all()

    def _refill(self, bucket: str) -> None:
        """Take a lease's worth of tokens from Redis for ``bucket`` ahead of need: added to the
        lease then held (or a new one if it expired meanwhile), so they are taken before they are
        spent, and forfeited like any leased token if not spent in time."""
        wanted = self._lease_extra + 1
        start = time.monotonic()
        client = self._redis_client() if start >= self._redis_down_until else None
        granted, remaining = 0, 0.0
        if client is not None:
            try:
                _, _, left, got = self._script(
                    client, [f"ion:routing:ratelimit:{bucket}"], [self._rate, self._burst, 0, wanted]
                )
                granted, remaining = int(got), float(left)
            except Exception as exc:  # noqa: BLE001 - redis errors: requests fall back as they do
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "rate limit store unavailable; limiting per instance",
                    extra={"error": repr(exc), "retry_seconds": self.retry_seconds},
                )
                client = None
        with self._lock:
            lease = self._leases.get(bucket)
            if lease is None or lease.expires <= start:
                lease = self._leases[bucket] = _Lease(0.0, start, remaining, -1)
            # Redis short (or unreachable): no more refills here; the request that finds the lease
            # empty asks Redis itself, as without refills (and is refused or falls back).
            lease.refill_at = self._refill_at if granted >= wanted else -1
            if granted:
                lease.tokens += granted
                lease.expires = start + self._lease_seconds
            if client is not None:
                lease.remote_left = remaining
                if remaining < 1:
                    # As after an admission that leaves Redis under a token: none before it is due.
                    self._empty_until[bucket] = start + (1 - remaining) / self._rate
            if self._refill_waiters:  # requests that found the lease empty meanwhile
                self._refilled.notify_all()

    def _forget_claim(self, bucket: str, claim: float) -> None:
        with self._lock:
            if self._empty_until.get(bucket) == claim:  # not since replaced by a newer answer
                del self._empty_until[bucket]

    def _remember_empty(self, bucket: str, until: float, now: float) -> None:
        with self._lock:
            self._empty_until[bucket] = until
            if len(self._empty_until) > MAX_LEASES:  # one per refused key: drop the past
                self._empty_until = {k: v for k, v in self._empty_until.items() if v > now}

    def _take_local(self, bucket: str, cost: int = 1) -> Verdict:
        now = time.monotonic()
        with self._lock:
            state = self._local.get(bucket)
            if state is None:
                state = self._local[bucket] = _LocalBucket(float(self._burst), now)
            state.tokens = min(self._burst, state.tokens + (now - state.stamp) * self._rate)
            state.stamp = now
            if state.tokens >= cost:
                state.tokens -= cost
                return Verdict(True, 0.0, state.tokens)
            return Verdict(False, (cost - state.tokens) / self._rate, state.tokens)


def _address(client: str | Callable[[], str]) -> str:
    return client if isinstance(client, str) else client()


def settle_refills(timeout: float = 30.0) -> bool:
    """Wait until no guard of this process has a refill queued or in flight (at most ``timeout``
    seconds); whether they all settled."""
    deadline = time.monotonic() + timeout
    while any(guard.refills_pending for guard in list(_GUARDS)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
