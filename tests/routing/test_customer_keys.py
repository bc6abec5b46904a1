"""Routing accepts customer keys (issued by the health capability) beside ION_API_KEYS, limits
each key, refuses revoked ones within the cache TTL, and counts requests under the customer,
which the health run then reads back from the metric store."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from functions.health import registry
from functions.health.models import CustomerIn
from shared.customer_keys import CUSTOMER_FEEDBACK_METRIC, CUSTOMER_REQUESTS_METRIC, cache_key
from tests.routing.test_key_screening import unknown_signed_key

pytestmark = pytest.mark.emulators

ROUTE = {"resonance_key": "calm-flowing-seek-advice"}


@pytest.fixture(autouse=True)
def _quiet_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.setenv("ION_CACHE_WARM_ITEMS", "0")


def _issue(customer_id: str = "acme") -> str:
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    registry.create_customer(CustomerIn(id=customer_id, name=customer_id))
    return registry.issue_key(customer_id).api_key


def test_open_api_attributes_customer_traffic_and_refuses_unknown_customer_keys(
    fs, redis_url, collected
) -> None:  # type: ignore[no-untyped-def]
    key = _issue()
    client, service, sink = collected()
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": key}).status_code == 200
    assert (
        client.post("/v2/route", json={"message": "how do I start?"}, headers={"X-API-Key": key}).status_code
        == 200
    )
    assert (
        client.post(
            "/v2/route", json={"resonance_key": "calm-flowing-nope"}, headers={"X-API-Key": key}
        ).status_code
        == 422
    )
    assert client.post("/v2/route", json=ROUTE).status_code == 200  # open: no key still served
    forged = key[:-4] + "AAAA"
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": forged}).status_code == 401
    unknown = unknown_signed_key()
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": unknown}).status_code == 401
    service.telemetry.flush()
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", feature="route_key", outcome="ok") == 1
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", feature="route_message", outcome="ok") == 1
    assert (
        sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", feature="route_key", outcome="client_error")
        == 1
    )
    assert sink.total(CUSTOMER_REQUESTS_METRIC) == 3  # the anonymous and refused requests are nobody's
    import redis

    assert redis.Redis.from_url(redis_url).get(cache_key(key[4:16])) is not None  # L2 filled


def test_operator_and_customer_keys_side_by_side_with_a_limit_per_key(fs, redis_url, collected) -> None:  # type: ignore[no-untyped-def]
    first, second = _issue("acme"), _issue("beta")
    client, service, sink = collected(
        ION_API_KEYS="operator-key", ION_RATE_LIMIT_BURST="2", ION_RATE_LIMIT_PER_SECOND="0.01"
    )
    assert client.post("/v2/route", json=ROUTE).status_code == 401
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": "operator-key"}).status_code == 200
    statuses = [
        client.post("/v2/route", json=ROUTE, headers={"X-API-Key": first}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": second}).status_code == 200
    service.telemetry.flush()
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", outcome="rate_limited") == 1
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="beta", outcome="ok") == 1


def test_revoked_keys_are_refused_within_the_cache_ttl(fs, redis_url, make_client) -> None:  # type: ignore[no-untyped-def]
    key = _issue()
    client = make_client(ION_CUSTOMER_KEY_CACHE_SECONDS="1")
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": key}).status_code == 200
    registry.revoke_key("acme", key[4:16])
    import redis

    assert redis.Redis.from_url(redis_url).get(cache_key(key[4:16])) is None  # revocation cleared L2
    time.sleep(1.2)
    assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": key}).status_code == 401


def test_customer_keys_work_without_redis(fs, make_client) -> None:  # type: ignore[no-untyped-def]
    key = _issue()
    client = make_client()
    for _ in range(3):
        assert client.post("/v2/route", json=ROUTE, headers={"X-API-Key": key}).status_code == 200


def test_a_routed_request_shows_up_in_the_customers_usage_and_score(fs, collected, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Routing's batch stored by ingestion, read back by the health run's usage source."""
    monkeypatch.setenv("ION_METRICS_UPDATES_TOPIC", "")  # no alert evaluation on ingest here
    from functions.health.config import load_config
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import MetricUsage
    from functions.ingestion.main import ingest_payload
    from functions.routing.telemetry import CONTENT_TYPE
    from shared.clock import utcnow

    key = _issue()
    client, service, sink = collected()
    routed = client.post("/v2/route", json=ROUTE, headers={"X-API-Key": key}).get_json()
    client.post("/v2/recommend", json={"scenario": "I need a plan for my week"}, headers={"X-API-Key": key})
    answer = {"request_id": routed["request_id"], "helpful": True, "rating": 5, "nps": 9}
    assert client.post("/v2/feedback", json=answer, headers={"X-API-Key": key}).status_code == 201
    assert (
        client.post("/v2/feedback", json=answer, headers={"X-API-Key": key}).status_code == 200
    )  # not recounted
    service.telemetry.flush()
    assert sink.total(CUSTOMER_FEEDBACK_METRIC, customer="acme") == 3  # helpful, rating_5, nps_9
    for payload in sink.payloads:
        ingest_payload(payload, CONTENT_TYPE)

    tomorrow = utcnow().date() + timedelta(days=1)
    usage = MetricUsage().customers_usage(tomorrow, 28)["acme"]
    assert usage.daily == {utcnow().date(): 4}
    assert usage.features == {"route_key": 1, "recommend": 1, "feedback": 2}
    assert usage.feedback == {"helpful": 1, "rating_5": 1, "nps_9": 1}
    cfg = load_config(DEFAULT_CONFIG_FILE)
    source = MetricUsage()
    summary = run_health(tomorrow, cfg=cfg, usage_source=source, store=FirestoreHealthStore(), publish=None)
    assert summary.usage_queries == 4  # three for every customer's usage, one for the persona mix
    health: dict[str, Any] = fs.collection("customers").document("acme").get().to_dict()["health"]
    assert health["components"]["adoption"]["inputs"]["used"] == ["route_key", "recommend", "feedback"]
    assert health["components"]["feedback"]["inputs"]["nps"] == 100.0


def test_a_key_store_refusing_for_good_is_a_500_not_retry_later(make_client) -> None:  # type: ignore[no-untyped-def]
    """Firestore answering PERMISSION_DENIED (IAM) is no outage: a logged 500, no Retry-After."""
    from tests.grpc_refusing import refusing_grpc_server

    unknown = unknown_signed_key()  # signed, so it gets as far as the store
    with refusing_grpc_server() as host:
        client = make_client(FIRESTORE_EMULATOR_HOST=host)
        answer = client.post("/v2/route", json=ROUTE, headers={"X-API-Key": unknown})
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
    assert "refused by the test server" not in answer.get_data(as_text=True)


def test_a_customers_usage_counts_what_routing_understood_of_the_request(fs, redis_url, collected) -> None:  # type: ignore[no-untyped-def]
    """The per-customer counters (the health score's adoption and feedback signals) read the body
    as the route validated it: an old client's ``key`` routes by key, a ``"false"`` is not helpful
    and a rating of ``4.0`` is a 4. Read raw, a v1 client routing by key looked like one never
    routing by key (an education campaign about a feature it uses), a "false" counted helpful."""
    key = _issue()
    client, service, sink = collected()
    as_customer = {"X-API-Key": key}
    v1 = client.post(
        "/v1/route", json={"key": "calm-flowing-seek-advice", "user_input": "hi"}, headers=as_customer
    )
    assert v1.status_code == 200
    routed = client.post("/v2/route", json=ROUTE, headers=as_customer).get_json()
    answer = {"request_id": routed["request_id"], "helpful": "false", "rating": 4.0}
    assert client.post("/v2/feedback", json=answer, headers=as_customer).get_json()["outcome"] == "created"
    service.telemetry.flush()
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", feature="route_key") == 2
    assert sink.total(CUSTOMER_REQUESTS_METRIC, customer="acme", feature="route_message") == 0
    assert sink.total(CUSTOMER_FEEDBACK_METRIC, customer="acme", answer="not_helpful") == 1
    assert sink.total(CUSTOMER_FEEDBACK_METRIC, customer="acme", answer="helpful") == 0
    assert sink.total(CUSTOMER_FEEDBACK_METRIC, customer="acme", answer="rating_4") == 1


def test_a_customer_cannot_rewrite_another_customers_feedback(fs, redis_url, collected) -> None:  # type: ignore[no-untyped-def]
    """A request id is a bearer token: one that leaked (a shared log, a support ticket) must not
    let another customer's key change the answer its customer gave."""
    from functions.routing.feedback import FEEDBACK_COLLECTION
    from shared.firestore import get_route_firestore

    acme, globex = _issue("acme"), _issue("globex")
    client, _service, _sink = collected()
    routed = client.post("/v2/route", json=ROUTE, headers={"X-API-Key": acme}).get_json()
    answer = {"request_id": routed["request_id"], "helpful": True, "rating": 5}
    assert client.post("/v2/feedback", json=answer, headers={"X-API-Key": acme}).status_code == 201
    other = client.post(
        "/v2/feedback", json={**answer, "helpful": False, "rating": 1}, headers={"X-API-Key": globex}
    )
    assert other.status_code == 403, other.get_data(as_text=True)
    assert "another customer" in other.get_json()["detail"]
    stored = (
        get_route_firestore().collection(FEEDBACK_COLLECTION).document(routed["request_id"]).get().to_dict()
    )
    assert (stored["customer_id"], stored["helpful"], stored["rating"]) == ("acme", True, 5)
    # Its own customer may still change it.
    changed = client.post("/v2/feedback", json={**answer, "rating": 4}, headers={"X-API-Key": acme})
    assert changed.get_json()["outcome"] == "updated"
