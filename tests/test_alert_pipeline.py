"""Across capabilities, on the emulators: an OTLP batch stored by metric ingestion is read back by
alert evaluation through the real query API, right after ingestion (metric-updates) and on the
scheduled cycle, and the firing transition reaches the `alerts` topic once."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import functions_framework
import pytest
from google.api_core.exceptions import AlreadyExists

from shared.messages import AlertTransition, MetricsIngested
from shared.topology import ROOT, load_topology
from tests.pubsub_helpers import pull_acknowledged, push_envelope

pytestmark = pytest.mark.emulators

RULES = """
rules:
  - name: checkout-latency-p95
    metric: http.server.request.duration
    agg: p95
    window: 5m
    op: ">"
    threshold: 0.2
    for: 0s
    severity: critical
    match: {service: checkout}
    group_by: [region]
    annotations:
      summary: "P95 {value}s > 200 ms in {labels}"
"""


def otlp_gauge(service: str, region: str, values: list[float]) -> dict:
    now_ns = time.time_ns()
    return {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {"key": "cloud.region", "value": {"stringValue": region}},
                    ]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "http.server.request.duration",
                                "unit": "s",
                                "gauge": {
                                    "dataPoints": [
                                        {"timeUnixNano": str(now_ns - i * 1_000_000), "asDouble": v}
                                        for i, v in enumerate(values)
                                    ]
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }


@pytest.fixture
def subscriptions(emulators):  # type: ignore[no-untyped-def]
    """Every topology topic on the emulator, with a pull subscription on metric-updates and alerts."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    created = {}
    for topic in load_topology().topics:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(emulators.project, topic))
    for topic in ("metric-updates", "alerts"):
        sub = subscriber.subscription_path(emulators.project, f"{topic}-pipeline-{time.monotonic_ns()}")
        subscriber.create_subscription(name=sub, topic=publisher.topic_path(emulators.project, topic))
        created[topic] = sub
    yield subscriber, created
    for sub in created.values():
        subscriber.delete_subscription(subscription=sub)


def pull(subscriber, subscription: str, want: int, timeout: float = 20) -> list:  # type: ignore[no-untyped-def]
    return pull_acknowledged(subscriber, subscription, quiet_seconds=timeout, want=want)


def test_a_breaching_batch_fires_once_through_ingestion_query_and_evaluation(
    fs, subscriptions, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    subscriber, subs = subscriptions
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("ION_RULES_FILE", str(rules))
    source = str(ROOT / "main.py")
    ingest = functions_framework.create_app("ingest", source, "http").test_client()
    on_ingest = functions_framework.create_app(
        "evaluate_alerts_on_ingest", source, "cloudevent"
    ).test_client()
    evaluate = functions_framework.create_app("evaluate_alerts", source, "http").test_client()

    # A healthy service and a slow one; only the slow one breaches.
    for service, region, value in (
        ("checkout", "europe-west1", 0.45),
        ("checkout", "us-central1", 0.03),
        ("search", "europe-west1", 0.9),
    ):
        response = ingest.post("/v1/metrics", json=otlp_gauge(service, region, [value] * 20))
        assert response.status_code == 200, response.get_data(as_text=True)

    updates = [
        MetricsIngested.model_validate_json(m.data) for m in pull(subscriber, subs["metric-updates"], 3)
    ]
    assert {name for u in updates for name in u.metrics} == {"http.server.request.duration"}

    # Right after ingestion: the metric-updates push evaluates the rules reading that metric.
    push = push_envelope(updates[0].model_dump(mode="json"), message_id="mu-1")
    assert on_ingest.post("/projects/ion-ops-test/topics/metric-updates", json=push).status_code == 200
    # The scheduled cycle and a redelivery of the same update find nothing new to announce.
    assert evaluate.post("/").status_code == 200
    assert on_ingest.post("/projects/ion-ops-test/topics/metric-updates", json=push).status_code == 200

    transitions = [AlertTransition.model_validate_json(m.data) for m in pull(subscriber, subs["alerts"], 1)]
    time.sleep(2)  # anything published twice would have arrived by now
    transitions += [
        AlertTransition.model_validate_json(m.data) for m in pull(subscriber, subs["alerts"], 1, 3)
    ]
    assert len(transitions) == 1
    firing = transitions[0]
    assert (firing.rule, firing.state, firing.severity) == ("checkout-latency-p95", "firing", "critical")
    assert firing.labels["region"] == "europe-west1"
    assert firing.value == pytest.approx(0.45, rel=0.01)
    assert firing.starts_at <= datetime.now(UTC)

    alerts = evaluate.get("/v1/alerts?state=firing").get_json()["alerts"]
    assert [(a["rule"], a["labels"]["region"]) for a in alerts] == [("checkout-latency-p95", "europe-west1")]
