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
def test_a_bulk_larger_than_the_burst_is_refused_saying_how_many_items_fit(
    make_client: Any, redis_url: str
) -> None:
    client = make_client(ION_API_KEYS="alpha", ION_RATE_LIMIT_BURST="5", ION_RATE_LIMIT_PER_SECOND="1")
    refused = client.post("/v2/bulk", json={"items": [ROUTE] * 6}, headers={"X-API-Key": "alpha"})
    assert refused.status_code == 429
    assert "send at most 5 items per request" in refused.get_json()["detail"]
    assert "Retry-After" not in refused.headers
