"""API keys (open when unset, 401 without a valid key) and the per-key token bucket (429)."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.processes import free_port

ROUTE = {"resonance_key": "calm-medium-learning"}


def test_open_when_no_keys_are_configured(client: Any) -> None:
    assert client.post("/v2/route", json=ROUTE).status_code == 200


def test_keys_required_when_configured(make_client: Any) -> None:
    client = make_client(ION_API_KEYS="alpha-key, beta-key")
    missing = client.post("/v2/route", json=ROUTE)
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert "X-API-Key" in missing.get_json()["detail"]
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha-ke"}).status_code == 401
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha-key "}).status_code == 401
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha-key"}).status_code == 200
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "beta-key"}).status_code == 200
    assert client.get("/v2/personas").status_code == 401
    # Probes stay open.
    assert client.get("/health").status_code != 401  # 503 here: no Firestore in this test


@pytest.mark.redis
def test_rate_limit_per_key_in_redis_with_retry_after(make_client: Any, redis_url: str) -> None:
    env = {"ION_API_KEYS": "alpha,beta", "ION_RATE_LIMIT_BURST": "3", "ION_RATE_LIMIT_PER_SECOND": "0.5"}
    client = make_client(**env)
    statuses = [
        client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha"}).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    refused = client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert refused.get_json()["retry_after"] == int(refused.headers["Retry-After"])
    # Another key has its own bucket.
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "beta"}).status_code == 200
    # The bucket lives in Redis: a second instance sees the same empty bucket.
    other_instance = make_client(**env)
    assert other_instance.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha"}).status_code == 429
    import redis

    names = [n.decode() for n in redis.Redis.from_url(redis_url).keys("ion:routing:ratelimit:*")]
    assert len(names) == 2
    assert not any("alpha" in n or "beta" in n for n in names)  # keys are never stored in clear


def test_rate_limit_falls_back_to_a_local_bucket_when_redis_is_down(make_client: Any) -> None:
    client = make_client(
        ION_API_KEYS="alpha",
        ION_RATE_LIMIT_BURST="2",
        ION_RATE_LIMIT_PER_SECOND="0.5",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    statuses = [
        client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha"}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


@pytest.mark.redis
def test_a_bulk_request_costs_one_token_per_item(make_client: Any, redis_url: str) -> None:
    env = {"ION_API_KEYS": "alpha", "ION_RATE_LIMIT_BURST": "10", "ION_RATE_LIMIT_PER_SECOND": "0.01"}
    client = make_client(**env)
    key = {"X-API-Key": "alpha"}
    assert client.post("/v2/bulk", json={"items": [ROUTE] * 4}, headers=key).status_code == 200
    assert client.post("/v2/bulk", json={"items": [ROUTE] * 4}, headers=key).status_code == 200
    # 8 of 10 tokens spent: a bulk of 4 more is refused, and the bucket (in Redis, seen by another
    # instance) still has the 2 left for single requests.
    refused = client.post("/v2/bulk", json={"items": [ROUTE] * 4}, headers=key)
    assert refused.status_code == 429
    assert "one per item" in refused.get_json()["detail"]
    other_instance = make_client(**env)
    statuses = [other_instance.post("/v2/route", json=ROUTE, headers=key).status_code for _ in range(2)]
    assert statuses == [200, 429]  # the refused bulk's admission took one of the two


@pytest.mark.redis
def test_a_bulk_larger_than_the_burst_is_a_413_saying_how_many_items_fit(
    make_client: Any, redis_url: str
) -> None:
    client = make_client(ION_API_KEYS="alpha", ION_RATE_LIMIT_BURST="5", ION_RATE_LIMIT_PER_SECOND="1")
    refused = client.post("/v2/bulk", json={"items": [ROUTE] * 6}, headers={"X-API-Key": "alpha"})
    # Not 429: no wait would admit it, and a client retrying on 429 would retry it for ever.
    assert refused.status_code == 413
    assert "send at most 5 items per request" in refused.get_json()["detail"]
    assert "Retry-After" not in refused.headers
    assert refused.headers["RateLimit-Limit"] == "5"


def _evalsha_calls(redis_url: str) -> int:
    import redis

    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.redis
def test_tokens_are_leased_so_most_requests_skip_redis(make_client: Any, redis_url: str) -> None:
    # Rate 50/s, burst 100: a lease is 5 tokens (a tenth of a second of the rate).
    client = make_client(ION_API_KEYS="alpha", ION_RATE_LIMIT_BURST="100", ION_RATE_LIMIT_PER_SECOND="50")
    before = _evalsha_calls(redis_url)
    statuses = {
        client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "alpha"}).status_code for _ in range(50)
    }
    assert statuses == {200}
    assert 10 <= _evalsha_calls(redis_url) - before <= 12


@pytest.mark.redis
def test_leased_tokens_never_let_instances_exceed_the_limit(redis_url: str) -> None:
    import redis

    from functions.routing.auth import ApiKeyGuard, RateLimited
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    def instance() -> ApiKeyGuard:
        """One routing instance's guard: its own leases, the shared Redis bucket."""
        telemetry = Telemetry("routing", publish=lambda _: None, settings=TelemetrySettings(enabled=False))
        return ApiKeyGuard(
            ["alpha"],
            rate=0.001,
            burst=10,
            metrics=RoutingMetrics(telemetry),
            redis_client=lambda: redis.Redis.from_url(redis_url),
            lease_tokens=4,
            lease_seconds=60,
        )

    def admitted(guard: ApiKeyGuard, times: int) -> list[bool]:
        out = []
        for _ in range(times):
            try:
                guard.check("alpha")
                out.append(True)
            except RateLimited:
                out.append(False)
        return out

    first, second = instance(), instance()
    assert admitted(first, 1) == [True]  # takes 4 tokens, spends 1
    assert admitted(second, 7) == [True] * 6 + [False]  # the 6 left in Redis, leased 4 then 2
    assert admitted(first, 4) == [True, True, True, False]  # its lease's 3, then Redis is empty


def _guard(redis_url: str, *, rate: float, burst: int, lease_tokens: int = 1) -> Any:
    """One routing instance's guard for key ``alpha`` on the shared Redis bucket."""
    import redis

    from functions.routing.auth import ApiKeyGuard
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    telemetry = Telemetry("routing", publish=lambda _: None, settings=TelemetrySettings(enabled=False))
    return ApiKeyGuard(
        ["alpha"],
        rate=rate,
        burst=burst,
        metrics=RoutingMetrics(telemetry),
        redis_client=lambda: redis.Redis.from_url(redis_url),
        lease_tokens=lease_tokens,
    )


@pytest.mark.redis
def test_a_refusal_is_remembered_until_the_next_token_is_due(redis_url: str) -> None:
    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, rate=0.1, burst=1)  # the next token 10 s after the first is spent
    guard.check("alpha")
    with pytest.raises(RateLimited) as first:
        guard.check("alpha")
    asked = _evalsha_calls(redis_url)
    retries = []
    for _ in range(5):
        with pytest.raises(RateLimited) as again:
            guard.check("alpha")
        retries.append(again.value.retry_after)
        assert again.value.headers["RateLimit-Remaining"] == "0"
    assert _evalsha_calls(redis_url) == asked  # refused here, Redis not asked again
    assert all(1 <= retry <= first.value.retry_after for retry in retries)
    # Another instance, which has not been refused, asks Redis and is refused too.
    with pytest.raises(RateLimited):
        _guard(redis_url, rate=0.1, burst=1).check("alpha")
    assert _evalsha_calls(redis_url) == asked + 1


@pytest.mark.redis
def test_a_remembered_refusal_ends_when_the_token_is_due(redis_url: str) -> None:
    import time

    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, rate=4, burst=1)  # a token every 0.25 s
    guard.check("alpha")
    with pytest.raises(RateLimited):
        guard.check("alpha")
    deadline = time.monotonic() + 30
    while True:  # admitted again once the token is due (polled, bounded)
        try:
            guard.check("alpha")
            break
        except RateLimited:
            assert time.monotonic() < deadline, "never admitted again"
            time.sleep(0.05)


@pytest.mark.redis
def test_a_bulk_refused_for_its_size_does_not_refuse_single_requests(redis_url: str) -> None:
    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, rate=0.001, burst=5)
    for _ in range(3):
        guard.check("alpha")  # 2 tokens left
    asked = _evalsha_calls(redis_url)
    with pytest.raises(RateLimited):
        guard.charge_items("alpha", 4)  # needs 3 more
    assert _evalsha_calls(redis_url) == asked + 1  # refused by Redis, not for its size
    guard.check("alpha")  # the bucket's tokens were still there for one request
    guard.check("alpha")
    with pytest.raises(RateLimited):
        guard.check("alpha")


def _shared_guard(redis_url: str, *, rate: float, burst: int) -> Any:
    """A guard on one Redis client (as deployed: ``get_redis`` is made once per instance)."""
    import redis

    from functions.routing.auth import ApiKeyGuard
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    client = redis.Redis.from_url(redis_url)
    telemetry = Telemetry("routing", publish=lambda _: None, settings=TelemetrySettings(enabled=False))
    return ApiKeyGuard(
        ["alpha"], rate=rate, burst=burst, metrics=RoutingMetrics(telemetry), redis_client=lambda: client
    )


@pytest.mark.redis
def test_the_bucket_script_is_loaded_again_after_redis_forgets_it(redis_url: str) -> None:
    import redis

    from functions.routing.auth import RateLimited

    guard = _shared_guard(redis_url, rate=0.001, burst=3)
    guard.check("alpha")
    redis.Redis.from_url(redis_url).script_flush()  # as after a restart or failover
    guard.check("alpha")
    guard.check("alpha")
    with pytest.raises(RateLimited):  # all 3 tokens were taken from the Redis bucket
        guard.check("alpha")
    assert guard.limiter._redis_down_until == 0.0  # never fell back to the local bucket


@pytest.mark.redis
def test_a_broken_redis_connection_is_opened_again(redis_url: str) -> None:
    import redis

    from functions.routing.auth import RateLimited

    guard = _shared_guard(redis_url, rate=0.001, burst=3)
    guard.limiter.retry_seconds = 0.0  # ask Redis again at once after a failure
    guard.check("alpha")
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    guard.check("alpha")  # the dead connection fails: the local bucket answers, and it is closed
    (bucket,) = admin.keys("ion:routing:ratelimit:*")
    assert float(admin.hget(bucket, "tokens")) == pytest.approx(2, abs=0.01)  # not taken from Redis
    guard.check("alpha")  # a new connection: Redis again
    assert float(admin.hget(bucket, "tokens")) == pytest.approx(1, abs=0.01)
    guard.check("alpha")
    with pytest.raises(RateLimited):
        guard.check("alpha")


@pytest.mark.redis
def test_an_admission_that_empties_the_bucket_is_remembered_too(redis_url: str) -> None:
    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, rate=0.1, burst=2)  # no lease: a Redis round trip per token
    guard.check("alpha")  # 1 token left in Redis
    guard.check("alpha")  # none left: Redis said so with the admission
    asked = _evalsha_calls(redis_url)
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            guard.check("alpha")
        assert 1 <= refused.value.retry_after <= 10
    assert _evalsha_calls(redis_url) == asked  # refused here, Redis not asked
    # Another instance asks Redis, which refuses it too: the remembered refusal refused nothing
    # Redis would have admitted.
    with pytest.raises(RateLimited):
        _guard(redis_url, rate=0.1, burst=2).check("alpha")
    assert _evalsha_calls(redis_url) == asked + 1


@pytest.mark.redis
def test_requests_arriving_while_one_asks_for_the_due_token_do_not_ask_too(redis_url: str) -> None:
    import time

    from functions.routing.auth import RateLimited

    guard = _guard(redis_url, rate=1, burst=1)  # a token a second, no lease
    asked_at = time.monotonic()
    guard.check("alpha")  # the bucket is empty, and the guard knows until when
    answered_at = time.monotonic()
    (due,) = guard.limiter._empty_until.values()
    # ``due`` is a lower bound: it counts from before the question, Redis from when it ran the
    # script (up to the call's time later; a loaded machine makes that tens of milliseconds). The
    # token is surely there once that time has passed too, and the claim on it lasts a second.
    assert answered_at - asked_at < 0.5
    ready = due + (answered_at - asked_at) + 0.01
    deadline = time.monotonic() + 30
    while time.monotonic() < ready:  # polled, bounded
        assert time.monotonic() < deadline
        time.sleep(0.01)
    asked = _evalsha_calls(redis_url)
    real = guard.limiter._script
    arrived: list[str] = []

    def asking(*args: Any) -> Any:
        """Another request arrives while this one's question is in flight."""
        guard.limiter._script = real
        try:
            guard.check("alpha")
            arrived.append("admitted")
        except RateLimited:
            arrived.append("refused")
        return real(*args)

    guard.limiter._script = asking
    guard.check("alpha")  # the due token: admitted
    assert arrived == ["refused"]  # no second token before a second after the first was due
    assert _evalsha_calls(redis_url) == asked + 1  # and only the first asked Redis


@pytest.mark.redis
def test_a_key_held_at_its_limit_asks_redis_a_lease_at_a_time(redis_url: str) -> None:
    """A client sending faster than its limit keeps the bucket empty: each answer leaves Redis
    under a token. The instance then waits for a lease's worth before asking again, instead of
    asking for each token as it comes due, and admits no more than the limit allows."""
    import time

    from functions.routing.auth import RateLimited

    rate, burst = 200.0, 200
    guard = _guard(redis_url, rate=rate, burst=burst, lease_tokens=20)
    asked = _evalsha_calls(redis_url)
    admitted = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # far faster than 200 a second, on any machine
        try:
            guard.check("alpha")
            admitted += 1
        except RateLimited:
            pass
    elapsed = time.monotonic() - started
    round_trips = _evalsha_calls(redis_url) - asked
    assert admitted <= burst + rate * elapsed + 1  # exact: never more than the bucket held
    assert admitted >= burst  # the burst, then the refill (not starved)
    # The burst in leases of 20 (10 round trips), then about a round trip per 20 tokens refilled
    # (asking for each token as it came due took one per token: ~300 here).
    assert round_trips <= 10 + (admitted - burst) / 20 * 2 + 5, (round_trips, admitted)


@pytest.mark.redis
@pytest.mark.parametrize("bulk_first", [True, False])
def test_an_operator_key_starting_like_a_customer_key_has_one_bucket_for_requests_and_items(
    make_client: Any, redis_url: str, bulk_first: bool
) -> None:
    """An operator key may start with ``ion_`` (``ion_platformkey_...``); it is not customer-shaped,
    so it is admitted on its own bucket. Its bulk items were charged to a bucket named after its
    characters 4-16 instead: twice the limit, and shared by every such key with those characters."""
    operator, other = "ion_platformkey_" + "a" * 30, "ion_platformkey_" + "b" * 30
    env = {
        "ION_API_KEYS": f"{operator},{other}",
        "ION_RATE_LIMIT_BURST": "5",
        "ION_RATE_LIMIT_PER_SECOND": "0.01",
    }
    client = make_client(**env)
    if bulk_first:
        assert (
            client.post("/v2/bulk", json={"items": [ROUTE] * 5}, headers={"X-API-Key": operator}).status_code
            == 200
        )
        assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": operator}).status_code == 429
    else:
        assert (
            client.post("/v2/bulk", json={"items": [ROUTE] * 5}, headers={"X-API-Key": other}).status_code
            == 200
        )
        assert (
            client.post("/v2/bulk", json={"items": [ROUTE] * 5}, headers={"X-API-Key": operator}).status_code
            == 200
        )
