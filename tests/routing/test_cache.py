"""The two-tier cache: L1 bounds and evictions, L2 on a real Redis, warm-up, and Redis down for real."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.processes import free_port
from functions.routing.cache import TwoTierCache
from functions.routing.metrics import RoutingMetrics
from functions.routing.telemetry import Telemetry, TelemetrySettings
from tests.routing.conftest import MetricsSink


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def l1_only(max_items: int = 3, ttl: float = 45.0) -> tuple[TwoTierCache, MetricsSink, Ticks, Telemetry]:
    sink, ticks = MetricsSink(), Ticks()
    telemetry = Telemetry("routing", publish=sink.publish, settings=TelemetrySettings(enabled=True))
    cache = TwoTierCache(
        RoutingMetrics(telemetry),
        l1_max_items=max_items,
        l1_ttl_seconds=ttl,
        l2_ttl_seconds=600,
        redis_retry_seconds=5,
        redis_client=lambda: None,
        timer=ticks,
    )
    return cache, sink, ticks, telemetry


def test_l1_hits_misses_and_ttl_expiry_are_counted() -> None:
    cache, sink, ticks, telemetry = l1_only()
    assert cache.get("route", "a") is None
    cache.put("route", "a", {"v": 1})
    assert cache.get("route", "a") == {"v": 1}
    ticks.now = 46  # past the 45 s TTL
    assert cache.get("route", "a") is None
    cache.put("route", "b", {"v": 2})  # a write sweeps expired items
    telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="route") == 1
    assert sink.total("ion.cache.requests", tier="l1", result="miss", endpoint="route") == 2
    assert sink.total("ion.cache.evictions", tier="l1", endpoint="route", reason="expired") == 1
    # No Redis configured: L2 is off, not "unavailable".
    assert sink.total("ion.cache.requests", tier="l2") == 0


def test_l1_is_bounded_in_size_evicting_least_recently_used() -> None:
    cache, sink, _, telemetry = l1_only(max_items=3)
    for key in "abc":
        cache.put("bulk", key, key)
    assert cache.get("bulk", "a") == "a"  # a is now recent; b is the oldest
    cache.put("bulk", "d", "d")
    assert cache.l1_size() == 3
    assert cache.get("bulk", "b") is None
    assert cache.get("bulk", "a") == "a"
    telemetry.flush()
    assert sink.total("ion.cache.evictions", tier="l1", endpoint="bulk", reason="size") == 1


@pytest.mark.redis
def test_l2_serves_what_another_instance_computed(collected: Any, redis_url: str) -> None:
    message = "I'm curious how does consistent hashing work? Please explain the concept."
    client, _, _ = collected()
    first = client.post("/v2/route", json={"message": message}).get_json()
    # A second instance: empty L1, same Redis.
    client, service, sink = collected()
    second = client.post("/v2/route", json={"message": message}).get_json()
    third = client.post("/v2/route", json={"message": message}).get_json()
    assert (
        first["resonance_key"]
        == second["resonance_key"]
        == third["resonance_key"]
        == "curious-medium-learning"
    )
    assert second["inference"] == first["inference"]
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l2", result="hit", endpoint="route") == 1
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="route") == 1  # promoted
    assert sink.total("ion.cache.l2.available") == 1


@pytest.mark.redis
def test_bulk_reads_l2_in_one_batch_and_warm_up_fills_l1(collected: Any, redis_url: str) -> None:
    items = [{"message": f"Help me plan milestone {i} with our team"} for i in range(20)]
    client, _, _ = collected()
    assert client.post("/v2/bulk", json={"items": items}).status_code == 200
    client, service, sink = collected()
    assert client.post("/v2/bulk", json={"items": items}).status_code == 200
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l2", result="hit", endpoint="bulk") == 20

    # A new instance with warm-up takes the items into L1 at start.
    client, service, sink = collected(ION_CACHE_WARM_ITEMS="100")
    assert service.warmed_items == 20
    assert client.post("/v2/bulk", json={"items": items}).status_code == 200
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="bulk") == 20
    assert sink.total("ion.cache.requests", tier="l2", endpoint="bulk") == 0


@pytest.mark.redis
def test_recommendations_are_cached(collected: Any, redis_url: str) -> None:
    scenario = {"scenario": "Analyse the data and verify the metrics of our experiment"}
    client, service, sink = collected()
    first = client.post("/v2/recommend", json=scenario).get_json()
    second = client.post("/v2/recommend", json=scenario).get_json()
    assert first == second
    assert first["recommended_persona"] == "Riri"
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="recommend") == 1
    assert sink.total("ion.cache.requests", tier="l2", result="miss", endpoint="recommend") == 1


def test_redis_on_a_closed_port_keeps_serving_and_says_so(collected: Any) -> None:
    client, service, sink = collected(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    message = "Our team is confused about the plan, can we organise the next steps?"
    for _ in range(3):
        response = client.post("/v2/route", json={"message": message})
        assert response.status_code == 200
    assert client.post("/v2/bulk", json={"items": [{"message": "fix this bug"}]}).get_json()["succeeded"] == 1
    health = client.get("/health")
    assert health.status_code == 503  # routing still serves, but a dependency is down: say so
    body = health.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert body["serving"]["cache_l2"] == "down"
    assert body["serving"]["routing"] is True
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l2", result="unavailable", endpoint="route") == 1
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="route") == 2
    assert [v for _, v in sink.points("ion.cache.l2.available")] == [0]


@pytest.mark.redis
def test_a_redis_server_stopped_mid_traffic(collected: Any) -> None:
    from devtools.emulators import start_redis

    port = free_port()
    redis_proc = start_redis(port)
    try:
        client, service, sink = collected(
            REDIS_URL=f"redis://127.0.0.1:{port}/0", ION_HEALTH_CACHE_SECONDS="0"
        )
        known = "Looking back, I realized the lesson from the outage was to ask earlier"
        assert client.post("/v2/route", json={"message": known}).status_code == 200
        assert client.get("/health").get_json()["checks"]["redis"]["ok"] is True
    finally:
        redis_proc.stop()
    again = client.post("/v2/route", json={"message": known})
    fresh = client.post("/v2/route", json={"message": "Is this right? Please review my proof"})
    assert again.status_code == fresh.status_code == 200
    assert fresh.get_json()["resonance_key"].endswith("validation")
    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    assert health["checks"]["redis"]["ok"] is False
    service.telemetry.flush()
    assert sink.total("ion.cache.requests", tier="l1", result="hit", endpoint="route") == 1
    assert sink.total("ion.cache.requests", tier="l2", result="unavailable", endpoint="route") == 1
