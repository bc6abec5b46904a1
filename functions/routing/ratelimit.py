"""The per-key rate limit: a token bucket per key (``ION_RATE_LIMIT_PER_SECOND`` refill,
``ION_RATE_LIMIT_BURST`` capacity) kept in Redis and updated by one Lua script, atomic across
instances, timed by Redis's own clock.

An instance takes tokens from Redis a few at a time (a *lease*: ``ION_RATE_LIMIT_LEASE_TOKENS``,
by default a tenth of a second of the rate and at most a tenth of the burst) and spends them
locally for at most ``ION_RATE_LIMIT_LEASE_SECONDS``, so most requests cost no Redis round trip. A
lease spent down to half is refilled by a thread of the limiter's own (one for all keys, one
refill in flight per key) before it runs out, so a key whose limit fits its traffic waits for
Redis only when the refill is late (a request that finds the lease empty asks Redis itself; one
that Redis refuses while the refill is in flight waits for the tokens the refill took). Tokens
are taken before they are spent, so the limit across instances is never exceeded; a lease left
unspent is forfeited (stricter, by at most a lease and a half per instance). A refusal is
remembered too, and so is an admission that leaves the bucket under a token: Redis said when the
bucket's next token is due, and the instance asks again only when a lease's worth is due (the
next token's time plus a lease at the rate, counted from before the question was sent), refusing
the key meanwhile without asking; then the first request asks for those tokens, and those arriving
while it asks are refused here. So a key held at its limit costs a round trip per lease, not per
token, and is admitted as much in total (the tokens wait in Redis, within the burst); its
refusals come in runs of up to a lease's time (0.1 s of the rate by default). Without a lease
(a burst under 20) the wait is the next token's, as before. Redis down: each instance keeps a
local bucket with the same numbers (a looser limit, but never an outage). Redis keys name a hash
of the API key (the bucket id the caller gives), never the key itself.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from functions.routing.bucket_script import TOKEN_BUCKET_LUA, BucketScript
from functions.routing.ratelimit_records import REFILLING, Lease, LocalBucket, Verdict, lease_size
from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

log = get_logger("routing.ratelimit")


MAX_LEASES = 10_000
# Every limiter made in this process (one per instance; tests make many), so that background
# refills can be waited for before Redis is emptied under them (``settle_refills``).
_LIMITERS: weakref.WeakSet[TokenBuckets] = weakref.WeakSet()


class TokenBuckets:
    """Token buckets per bucket id, kept in Redis, spent here from leases (see the module)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        lease_tokens: int = 0,
        lease_seconds: float = 1.0,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._redis_client = redis_client
        self._script = BucketScript(TOKEN_BUCKET_LUA)
        self._local: dict[str, LocalBucket] = {}
        self._lease_extra = lease_size(rate, burst, lease_tokens)
        self._lease_seconds = lease_seconds
        self._leases: dict[str, Lease] = {}
        # A lease down to half its size is refilled by one thread of this limiter's own, before it
        # runs out, so that a key's requests do not wait for Redis (none without a lease).
        self._refill_at = self._lease_extra // 2 if self._lease_extra >= 2 else -1
        self._refills: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._refiller: threading.Thread | None = None
        self.refill_idle_seconds = 60.0  # the refilling thread ends after this long without work
        self.refill_wait_seconds = 1.0  # a request waits this long at most for a refill in flight
        # Bucket => monotonic time before which this instance does not ask Redis for it again (a
        # refusal remembered): when Redis is short, until a lease's worth is due, not one token,
        # so a key held at its limit costs a round trip per lease, not per token.
        self._empty_until: dict[str, float] = {}
        self._lease_wait = min(self._lease_extra, max(0, burst - 1)) / rate  # the bucket holds no more
        self._lock = threading.Lock()
        self._refilled = threading.Condition(self._lock)  # a refill landed (or failed)
        self._refill_waiters = 0  # requests waiting on it (counted under the lock)
        _LIMITERS.add(self)
        self._redis_down_until = 0.0
        self.retry_seconds = 5.0

    def take(self, bucket: str, cost: int = 1) -> Verdict:
        """Spend ``cost`` tokens of ``bucket``: from the lease, else asking Redis (else locally)."""
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
                if now < empty_until:  # Redis was short: not asked again before a lease is due
                    return self._unless_refilling(bucket, cost, Verdict(False, empty_until - now, 0.0))
                # The tokens due then are this request's to ask for (its own and a lease); the
                # next are due a lease later. Until then the requests arriving while it asks are
                # refused here: otherwise each thread in flight asked Redis when a remembered
                # refusal ran out (~4 round trips per token of a key over its limit, under wrk).
                claim = empty_until + 1 / self._rate + self._lease_wait
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
                remote = remaining = float(left)  # remaining: Redis's, then with the lease held
                if not int(allowed):
                    if cost == 1:
                        # Fewer than one token at Redis's clock, which read after ``now``: none
                        # here before now + retry either (other instances only take tokens), and
                        # not asked again before a lease's worth is due.
                        self._remember_empty(bucket, now + float(retry) + self._lease_wait, now)
                    elif claim is not None:  # a bulk refused took no token: the claimed one is there
                        self._forget_claim(bucket, claim)
                    with self._lock:
                        return self._unless_refilling(bucket, cost, Verdict(False, float(retry), remaining))
                if self._lease_extra:
                    with self._lock:
                        held = self._leases.get(bucket)
                        kept = held.tokens if held is not None and held.expires > now else 0.0
                        # A refill still in flight lands in this lease: none other is started.
                        refilling = held is not None and held.refill_at == REFILLING
                        # No refill ahead while Redis cannot fill a lease: the request that finds
                        # it empty asks, once a lease's worth is due (see ``_empty_until``).
                        refill_at = self._refill_at if remote >= self._lease_extra else -1
                        lease = self._leases[bucket] = Lease(
                            kept + int(granted) - cost,
                            now + self._lease_seconds,
                            remote,
                            REFILLING if refilling else refill_at,
                        )
                        remaining += lease.tokens
                        if len(self._leases) > MAX_LEASES:  # one per key seen: drop the expired
                            self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
                if remote < 1:
                    # Admitted, and Redis has less than a token left: as after a refusal, not asked
                    # again before a lease's worth is due (a key over its limit cost a round trip
                    # per admitted request and another for the request refused right after). The
                    # lease just taken, if any, is spent meanwhile.
                    self._remember_empty(bucket, now + (1 - remote) / self._rate + self._lease_wait, now)
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
            return sum(1 for lease in self._leases.values() if lease.refill_at == REFILLING)

    def _start_refill(self, bucket: str, lease: Lease) -> None:
        """Queue a refill of ``bucket``'s lease (called holding the lock): one in flight per lease,
        one thread for all of them, started when needed."""
        lease.refill_at = REFILLING
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
        if lease is None or (lease.refill_at != REFILLING and lease.tokens < cost):
            return refusal  # the common case: no lease, or an empty one with nothing coming
        return self._after_refill(bucket, cost) or refusal

    def _after_refill(self, bucket: str, cost: int) -> Verdict | None:
        """Called holding the lock: waits (bounded) for ``bucket``'s refill if one is in flight,
        and spends from the lease (a refill may also have landed since Redis answered); None when
        it has too few tokens or the refill is late."""

        def landed() -> bool:
            lease = self._leases.get(bucket)
            return lease is None or lease.refill_at != REFILLING

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
                    if lease is not None and lease.refill_at == REFILLING:
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
                lease = self._leases[bucket] = Lease(0.0, start, remaining, -1)
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
                    self._empty_until[bucket] = start + (1 - remaining) / self._rate + self._lease_wait
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
                state = self._local[bucket] = LocalBucket(float(self._burst), now)
            state.tokens = min(self._burst, state.tokens + (now - state.stamp) * self._rate)
            state.stamp = now
            if state.tokens >= cost:
                state.tokens -= cost
                return Verdict(True, 0.0, state.tokens)
            return Verdict(False, (cost - state.tokens) / self._rate, state.tokens)


def settle_refills(timeout: float = 30.0) -> bool:
    """Wait until no limiter of this process has a refill queued or in flight (at most ``timeout``
    seconds); whether they all settled."""
    deadline = time.monotonic() + timeout
    while any(limiter.refills_pending for limiter in list(_LIMITERS)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
