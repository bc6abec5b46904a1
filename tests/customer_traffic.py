"""Customer traffic through routing's real metric recording and OTLP batches, delivered to the
real ``ingest_pubsub`` entry point as Pub/Sub pushes (the path a deployed batch takes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import functions_framework

from shared.topology import ROOT
from tests.pubsub_helpers import push_envelope

PUSH_PATH = "/projects/ion-ops-test/topics/metrics"
# Three features: (path, body, status) of one request each.
THREE_FEATURES: tuple[tuple[str, bytes, int], ...] = (
    ("/v2/route", b'{"resonance_key": "calm-flowing-seek_advice"}', 200),
    ("/v2/recommend", b'{"scenario": "a plan for my week"}', 200),
    ("/v2/bulk", b'{"items": []}', 200),
)
THREE_COUNTERS = {"route_key:ok": 1, "recommend:ok": 1, "bulk:ok": 1}


def routed_batches(
    customers: Iterable[str], requests: Sequence[tuple[str, bytes, int]] = THREE_FEATURES
) -> list[bytes]:
    """The OTLP batches routing ships for one request per customer and entry of ``requests``:
    counted by ``RoutingMetrics.count_customer_request`` and flushed as routing does at the end
    of each request (a batch once it holds ``ION_METRICS_MAX_SERIES`` series)."""
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    payloads: list[bytes] = []
    telemetry = Telemetry(
        "routing",
        publish=payloads.append,
        settings=TelemetrySettings(background_flush=False),
        region="us-central1",
    )
    metrics = RoutingMetrics(telemetry)
    for customer in customers:
        for path, body, status in requests:
            metrics.count_customer_request(customer, path, body, status)
            telemetry.maybe_flush()
    telemetry.flush()
    return payloads


def push_to_ingest(payloads: Sequence[bytes], *, first_id: int = 0) -> None:
    """Each payload pushed to ``ingest_pubsub`` as Pub/Sub would (a 2xx acknowledges it)."""
    app = functions_framework.create_app("ingest_pubsub", str(ROOT / "main.py"), "cloudevent")
    push = app.test_client()
    for number, data in enumerate(payloads, start=first_id):
        envelope = push_envelope(
            data, message_id=f"m-{number}", attributes={"content_type": "application/x-protobuf"}
        )
        answer = push.post(PUSH_PATH, json=envelope)
        assert answer.status_code == 200, answer.get_data(as_text=True)
