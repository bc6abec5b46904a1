"""The rate limit's lease is refilled in the background before it runs out: a key's requests do
not wait for Redis, the limit stays exact across instances, one refill is in flight per key and
one thread does them all. On a real redis-server; waits are polled and bounded, never timed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.redis

REFILL_THREAD = "ratelimit-refill"


def _guard(redis_url: str, *, burst: int, lease_tokens: int, rate: float = 0.001) -> Any:
    """One routing instance's guard for key ``alpha`` on the shared Redis bucket (a rate so low
    that the bucket does not refill during a test: every token is accounted for)."""
    import redis

    from functions.routing.auth import ApiKeyGuard
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    client = redis.Redis.from_url(redis_url)
    telemetry = Telemetry("routing", publish=lambda _: None, settings=TelemetrySettings(enabled=False))
    guard = ApiKeyGuard(
        ["alpha"],
        rate=rate,
        burst=burst,
        metrics=RoutingMetrics(telemetry),
        redis_client=lambda: client,
        lease_tokens=lease_tokens,
        lease_seconds=60,
    )
    guard.limiter.refill_idle_seconds = 1.0  # the thread ends soon after a test
    return guard


def _poll(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.005)


def _settled(guard: Any) -> None:
    _poll(lambda: guard.limiter.refills_pending == 0, "settled: a refill stayed in flight")


def _held(guard: Any) -> float:
    """Tokens this instance has taken from Redis and not spent."""
    return sum(lease.tokens for lease in guard.limiter._leases.values() if lease.expires > time.monotonic())


def _redis_tokens(redis_url: str) -> float:
    import redis

    admin = redis.Redis.from_url(redis_url)
    (bucket,) = admin.keys("ion:routing:ratelimit:*")
    return float(admin.hget(bucket, "tokens"))


class _Recorder:
    """Wraps a guard's bucket script: which thread asked Redis, and how many refills at once."""

    def __init__(
        self, guard: Any, hold_refills: threading.Event | None = None, *, hold_after: bool = False
    ) -> None:
        self.real = guard.limiter._script
        self.hold_after = hold_after  # the refill's tokens taken from Redis, not yet in the lease
        self.threads: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold_refills = hold_refills
        self._lock = threading.Lock()
        guard.limiter._script = self

    def __call__(self, *args: Any) -> Any:
        name = threading.current_thread().name
        refill = name == REFILL_THREAD
        with self._lock:
            self.threads.append(name)
            self.in_flight += refill
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold_refills is not None and refill and not self.hold_after:
                assert self.hold_refills.wait(30)
            answer = self.real(*args)
            if self.hold_refills is not None and refill and self.hold_after:
                assert self.hold_refills.wait(30)
            return answer
        finally:
            with self._lock:
                self.in_flight -= refill

    def by_requests(self) -> int:
        return sum(1 for name in self.threads if name != REFILL_THREAD)

    def by_refills(self) -> int:
        return sum(1 for name in self.threads if name == REFILL_THREAD)


def test_a_steady_keys_requests_do_not_wait_for_redis(redis_url: str) -> None:
    guard = _guard(redis_url, burst=1000, lease_tokens=5)
    calls = _Recorder(guard)
    for _ in range(41):
        guard.check("alpha")
        _settled(guard)  # between requests, as when the refill is quicker than the next request
    # Only the first request asked Redis (the lease of 5 tokens it took); every later round trip
    # was a refill made before the lease ran out. Without refills: one request in 5 asked.
    assert calls.by_requests() == 1
    assert calls.by_refills() >= 7
    # Every token taken from Redis was spent or is still held: none counted twice, none lost.
    assert 1000 - _redis_tokens(redis_url) == pytest.approx(41 + _held(guard), abs=0.01)


def test_instances_refilling_in_the_background_never_exceed_the_limit(redis_url: str) -> None:
    from functions.routing.auth import RateLimited

    instances = [_guard(redis_url, burst=60, lease_tokens=5) for _ in range(2)]
    admitted = [0]
    count = threading.Lock()

    def client(guard: Any) -> None:
        for _ in range(40):
            try:
                guard.check("alpha")
            except RateLimited:
                continue
            with count:
                admitted[0] += 1

    threads = [threading.Thread(target=client, args=(guard,)) for guard in instances for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    for guard in instances:
        _settled(guard)
    assert admitted[0] <= 60  # 320 tries, 60 tokens: never more admitted than the bucket had
    # Exact: each token was taken from Redis once, before it was spent; what is not spent is held
    # by an instance (forfeited when its lease expires), never handed out twice.
    held = sum(_held(guard) for guard in instances)
    assert admitted[0] + held + _redis_tokens(redis_url) == pytest.approx(60, abs=0.01)


def test_one_refill_in_flight_per_key_and_one_thread_for_all(redis_url: str) -> None:
    others = set(threading.enumerate())
    guard = _guard(redis_url, burst=1000, lease_tokens=10)  # refilled at 4 tokens left
    release = threading.Event()
    calls = _Recorder(guard, hold_refills=release)
    guard.check("alpha")  # 10 taken, 9 left
    for _ in range(5):
        guard.check("alpha")  # 4 left: the refill starts, and is held
    _poll(lambda: calls.by_refills() == 1, "refilled")
    for _ in range(4):
        guard.check("alpha")  # the lease's last 4, no second refill started
    buckets = [f"customer:{n:04x}" for n in range(5)]
    for bucket in buckets:  # other keys: their own leases, refilled by the same thread
        for _ in range(6):
            guard.limiter.take(bucket)
    # The lease is empty and its refill late: requests ask Redis themselves rather than queue
    # behind it (they return while it is still held), and start no second refill.
    for _ in range(3):
        guard.check("alpha")
    assert [t.name for t in set(threading.enumerate()) - others].count(REFILL_THREAD) == 1
    assert calls.by_refills() == 1
    assert calls.most_in_flight == 1
    assert calls.by_requests() == 1 + len(buckets) + 1  # each key's first lease; alpha's again
    release.set()
    _settled(guard)
    assert calls.by_refills() == 1 + len(buckets)  # one refill per key
    assert calls.most_in_flight == 1
    tokens_taken = 1000 * (1 + len(buckets)) - sum(float(v) for v in _all_bucket_tokens(redis_url))
    spent = 13 + 6 * len(buckets)
    assert tokens_taken == pytest.approx(spent + _held(guard), abs=0.01)  # none lost or doubled


def test_a_request_redis_refuses_while_the_refill_holds_its_tokens_gets_them(redis_url: str) -> None:
    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, burst=10, lease_tokens=5)  # refilled at 2 tokens left
    release = threading.Event()
    calls = _Recorder(guard, hold_refills=release, hold_after=True)
    guard.check("alpha")  # 5 taken, 4 left, 5 in Redis
    guard.check("alpha")
    guard.check("alpha")  # 2 left: the refill takes Redis's last 5, and is held before landing
    _poll(lambda: calls.by_refills() == 1 and _redis_tokens(redis_url) < 1, "refilled")
    guard.check("alpha")
    guard.check("alpha")  # the lease is empty; the refill's 5 are on their way
    # This request finds the lease empty and asks Redis, which has nothing left: it waits for the
    # refill instead of being refused (released from another thread once it is waiting).
    threading.Thread(
        target=lambda: (_poll(lambda: guard.limiter._refill_waiters == 1, "waiting"), release.set())
    ).start()
    guard.check("alpha")
    for _ in range(4):
        guard.check("alpha")  # the rest of the refill's tokens
    with pytest.raises(RateLimited):  # all 10 spent: refused, here or by Redis
        guard.check("alpha")
    _settled(guard)
    assert _held(guard) == 0


def _all_bucket_tokens(redis_url: str) -> list[bytes]:
    import redis

    admin = redis.Redis.from_url(redis_url)
    return [admin.hget(name, "tokens") for name in admin.keys("ion:routing:ratelimit:*")]


def test_a_failed_refill_leaves_requests_to_the_fallback(redis_url: str) -> None:
    guard = _guard(redis_url, burst=1000, lease_tokens=5)
    real = guard.limiter._script

    def failing(*args: Any) -> Any:
        if threading.current_thread().name == REFILL_THREAD:
            raise ConnectionError("Redis went away")
        return real(*args)

    guard.limiter._script = failing
    guard.check("alpha")  # 5 taken, 4 left
    guard.check("alpha")
    guard.check("alpha")  # 2 left: the refill starts and fails
    _settled(guard)
    assert guard.limiter._redis_down_until > time.monotonic()  # Redis skipped for a while, as on any error
    for _ in range(5):  # the lease's last 2, then the local bucket: admitted, never waiting
        guard.check("alpha")
    assert 1000 - _redis_tokens(redis_url) == pytest.approx(5, abs=0.01)  # the refill took none
