"""What routing emits, request by request, is what the metric catalogue declares: every metric
name, label and bounded value of its batches, labelled the way ingestion stores them."""

from __future__ import annotations

from typing import Any

import pytest

from functions.ingestion.labels import RESOURCE_LABELS, any_value, point_attrs
from shared.metrics.catalogue import check
from tests.routing.conftest import MetricsSink

pytestmark = pytest.mark.emulators


def stored_points(sink: MetricsSink) -> list[tuple[str, dict[str, str]]]:
    """(metric, labels) of every point, as ingestion labels them (resource service/region too)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    found = []
    for payload in sink.payloads:
        for rm in ExportMetricsServiceRequest.FromString(payload).resource_metrics:
            resource = {
                RESOURCE_LABELS[kv.key]: any_value(kv.value)
                for kv in rm.resource.attributes
                if kv.key in RESOURCE_LABELS
            }
            for scope in rm.scope_metrics:
                for metric in scope.metrics:
                    for point in getattr(metric, metric.WhichOneof("data")).data_points:
                        found.append((metric.name, {**resource, **dict(point_attrs(point))}))
    return found


def test_every_point_routing_emits_is_catalogued(collected: Any, fs: Any, redis_url: str) -> None:
    client, service, sink = collected(REDIS_URL=redis_url)
    routed = client.post("/v2/route", json={"message": "Help!! prod is down, fix it now"})
    assert routed.status_code == 200
    assert client.post("/v2/route", json={"message": "Help!! prod is down, fix it now"}).status_code == 200
    assert client.post("/v1/route", json={"resonance_key": "urgent-burst-planning"}).status_code == 200
    assert client.post("/v2/bulk", json={"items": [{"message": "fix this bug"}]}).status_code == 200
    assert client.post("/v2/recommend", json={"scenario": "a team retrospective"}).status_code in (200, 422)
    feedback = {"request_id": routed.get_json()["request_id"], "helpful": True, "rating": 4}
    assert client.post("/v2/feedback", json=feedback).status_code == 201
    assert client.get("/nowhere").status_code == 404
    assert client.get("/health").status_code in (200, 503)
    service.metrics.count_customer_request("acme", "/v2/feedback", b'{"helpful": false, "nps": 9}', 201)
    service.metrics.count_customer_request("acme", "/v2/route", b'{"message": "hi"}', 429)
    service.telemetry.flush()
    points = stored_points(sink)
    emitted = {name for name, _ in points}
    assert {"http.server.request.duration", "ion.cache.requests", "ion.routing.persona.selected"} <= emitted
    problems = {p for name, labels in points for p in check(name, labels)}
    assert problems == set()


def test_a_5xx_carries_error_type_so_the_error_rate_rules_can_fire(
    collected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service, sink = collected()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(service, "route", broken)
    assert client.post("/v2/route", json={"resonance_key": "urgent-burst-planning"}).status_code == 500
    assert client.post("/v2/route", json={"message": ""}).status_code == 422
    service.telemetry.flush()
    requests = [labels for name, labels in stored_points(sink) if name == "http.server.request.duration"]
    by_status = {labels["http.response.status_code"]: labels.get("error.type") for labels in requests}
    assert by_status == {"500": "500", "422": None}  # errors are the 5xx, not bad input
    assert all(check("http.server.request.duration", labels) == [] for labels in requests)
