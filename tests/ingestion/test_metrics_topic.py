"""Topic ``metrics`` is the public route's (issue #24, item 2): ``ingest_pubsub`` takes from it
only the catalogue's routing metrics, emitted as the services routing emits as, with the
catalogue's labels; forged batches that would fire or drown the critical latency rules are refused
and counted. Delivered as Pub/Sub pushes them, through the real entry point and store."""

from __future__ import annotations

import json
from datetime import timedelta

import functions_framework
import pytest

from functions.ingestion.topic_filter import ROUTING_SERVICES
from functions.routing.metrics import SERVICE_NAME
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from shared.topology import ROOT
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import gauge, histogram, request
from tests.pubsub_helpers import push_envelope

PB = "application/x-protobuf"
PUSH_PATH = "/projects/ion-ops-test/topics/metrics"
T0 = NOW.replace(second=0) - timedelta(minutes=5)
LATENCY = "http.server.request.duration"  # what the critical latency rules read


def _count(metric: str, **labels: str) -> float:
    result = run_query(
        MetricQuery(
            metric=metric,
            agg="count",
            start=T0 - timedelta(hours=1),
            end=NOW + timedelta(minutes=5),
            labels=labels,
        )
    )
    return sum(p[1] for s in result.series for p in s.points)


def test_routing_emits_as_a_service_the_filter_accepts() -> None:
    assert SERVICE_NAME in ROUTING_SERVICES


@pytest.mark.emulators
def test_forged_batches_on_topic_metrics_are_refused_and_counted(store, capsys) -> None:  # type: ignore[no-untyped-def]
    push = functions_framework.create_app("ingest_pubsub", str(ROOT / "main.py"), "cloudevent").test_client()
    slow = {"http.route": "/v2/route", "http.request.method": "POST", "http.response.status_code": 200}

    def latency(labels: dict[str, object], service: str):  # type: ignore[no-untyped-def]
        # 40 requests of ~9.5 s: enough to fire the critical p95 latency rule.
        metric = histogram(LATENCY, T0, [0.1, 1.0, 10.0], [0, 0, 40, 0], total=380.0, labels=labels)
        return request([metric], service=service)

    forged = [
        # The latency the rules read, claimed by another service (the persona service's name).
        latency(slow, "ion-mentoring"),
        # A metric that is not routing's at all.
        request([gauge("system.cpu.utilization", [(T0, 0.99, {})])], service="routing"),
        # Routing's metric with a label the catalogue does not list; a bounded label's foreign value.
        latency({**slow, "tenant": "x"}, "routing"),
        latency({**slow, "http.request.method": "BREW"}, "routing"),
    ]
    for index, batch in enumerate(forged):
        envelope = push_envelope(
            batch.SerializeToString(),
            message_id=f"f-{index}",
            publish_time=NOW,
            attributes={"content_type": PB},
        )
        assert push.post(PUSH_PATH, json=envelope).status_code == 200  # acknowledged: never retried
    assert _count(LATENCY) == 0
    assert _count("system.cpu.utilization") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    refused = sum(line.get("refused_from_topic", 0) for line in lines)
    assert refused == 4  # one point each (a histogram point is one point)
    reasons = " ".join(line["message"] for line in lines if "refused" in line["message"])
    assert "'ion-mentoring' is not one routing emits as" in reasons
    assert "not a routing metric" in reasons
    assert "'tenant'" in reasons
    assert "'BREW'" in reasons
    # Routing's own latency, as routing sends it, is stored.
    genuine = latency(slow, "routing")
    envelope = push_envelope(
        genuine.SerializeToString(), message_id="g-1", publish_time=NOW, attributes={"content_type": PB}
    )
    assert push.post(PUSH_PATH, json=envelope).status_code == 200
    assert _count(LATENCY, service="routing") == 40


@pytest.mark.emulators
def test_a_batch_without_content_type_is_read_as_what_it_is(store) -> None:  # type: ignore[no-untyped-def]
    """A publisher that sets no ``content_type``: the protobuf request starts with 0x0A (field 1),
    which was taken for JSON's newline, so every such batch was dead-lettered; JSON may start
    with any whitespace."""
    from google.protobuf.json_format import MessageToJson

    push = functions_framework.create_app("ingest_pubsub", str(ROOT / "main.py"), "cloudevent").test_client()
    route = {"http.route": "/v2/route", "http.request.method": "POST", "http.response.status_code": 200}

    def batch(at_minute: int):  # type: ignore[no-untyped-def]
        metric = histogram(LATENCY, T0 + timedelta(minutes=at_minute), [0.1], [3, 0], total=0.1, labels=route)
        return request([metric], service="routing")

    protobuf = batch(0).SerializeToString()
    assert protobuf[:1] == b"\n"
    as_json = ("\t" + MessageToJson(batch(1))).encode()
    for index, data in enumerate((protobuf, as_json)):
        envelope = push_envelope(data, message_id=f"bare-{index}", publish_time=NOW, attributes={})
        assert push.post(PUSH_PATH, json=envelope).status_code == 200
    assert _count(LATENCY, service="routing") == 6
