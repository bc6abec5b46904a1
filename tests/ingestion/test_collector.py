"""The collector through google-cloud-monitoring's real client against a local gRPC stand-in of
the Monitoring API that checks each request as the service would and serves recorded responses."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud import monitoring_v3

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW

pytestmark = pytest.mark.emulators
RECORDINGS = json.loads(
    (Path(__file__).parent / "recordings" / "monitoring_list_time_series.json").read_text()
)
PROJECT = "ion-prod"
FILTER = re.compile(
    r'^metric\.type = "(?P<type>[^"]+)" AND resource\.type = "(?P<resource>cloud_run_revision|cloudsql_database)" '
    r"AND resource\.labels\.(?P<label>service_name|database_id) = one_of\((?P<values>\"[^\"]+\"(, \"[^\"]+\")*)\)$"
)


class StandIn:
    """MetricService.ListTimeSeries as Cloud Monitoring answers it, from recordings."""

    def __init__(self) -> None:
        self.requests: list[tuple[monitoring_v3.ListTimeSeriesRequest, dict[str, str]]] = []
        self.lock = threading.Lock()

    def list_time_series(self, request: monitoring_v3.ListTimeSeriesRequest, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        with self.lock:
            self.requests.append((request, metadata))
        if request.name != f"projects/{PROJECT}":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"unknown project {request.name}")
        if metadata.get("x-goog-request-params", "").replace("%2F", "/") != f"name=projects/{PROJECT}":
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "routing header x-goog-request-params does not name the project",
            )
        match = FILTER.match(request.filter)
        if match is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Field filter had an invalid value: {request.filter}"
            )
        start, end = request.interval.start_time, request.interval.end_time
        if not start or not end or end <= start:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "interval must have start_time before end_time")
        if request.view != monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "view FULL expected")
        pages = RECORDINGS.get(match["type"])
        if pages is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Cannot find metric(s) that match type = {match['type']}"
            )
        index = int(request.page_token.removeprefix("page-")) - 1 if request.page_token else 0
        page = dict(pages[index])
        # Like the service, only points whose end time lies in (start, end] are returned.
        lo, hi = start.timestamp(), end.timestamp()
        for series in page.get("timeSeries", []):
            series["points"] = [
                p
                for p in series["points"]
                if lo
                < datetime.fromisoformat(p["interval"]["endTime"].replace("Z", "+00:00")).timestamp()
                <= hi
            ]
        return monitoring_v3.ListTimeSeriesResponse.from_json(json.dumps(page), ignore_unknown_fields=True)


@pytest.fixture
def standin() -> Iterator[tuple[str, StandIn]]:
    service = StandIn()
    handler = grpc.method_handlers_generic_handler(
        "google.monitoring.v3.MetricService",
        {
            "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                service.list_time_series,
                request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(None)


def value(metric: str, agg: str, **labels: str) -> float:
    result = run_query(
        MetricQuery(metric=metric, agg=agg, start=NOW - timedelta(hours=1), end=NOW, labels=labels)
    )
    assert len(result.series) == 1, result
    return result.series[0].points[0][1]


def test_collector_copies_cloud_run_and_cloud_sql_series_once(client, store, standin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    endpoint, service = standin
    monkeypatch.setenv("ION_MONITORING_ENDPOINT", endpoint)
    monkeypatch.setenv("ION_COLLECTOR_PROJECT", PROJECT)
    monkeypatch.setenv("ION_COLLECTOR_RUN_SERVICES", "route,ingest")
    monkeypatch.setenv("ION_COLLECTOR_SQL_INSTANCES", "ion-prod:ion-main")
    store.collection("metric_collector").document("state").set(
        {"cursor": datetime(2026, 3, 2, 11, 50, tzinfo=UTC)}
    )

    response = client.post("/v1/collect", json={}, headers={"X-CloudScheduler": "true"})
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["rejected"] == 0
    assert body["minutes"] == 7  # 11:50 .. 11:57 (now 12:00:30 minus Monitoring's 3 min delay)
    assert body["cursor"].startswith("2026-03-02T11:57:00")

    types = {r.filter.split('"')[1] for r, _ in service.requests}
    assert len(types) == 9
    first = service.requests[0][0]
    assert first.interval.start_time == datetime(2026, 3, 2, 11, 50, tzinfo=UTC)
    assert first.interval.end_time == datetime(2026, 3, 2, 11, 57, tzinfo=UTC)
    assert 'one_of("route", "ingest")' in first.filter
    assert any(r.page_token == "page-2" for r, _ in service.requests)  # the client followed the pages

    assert value("cloudrun.request.count", "sum", service="route", response_code_class="2xx") == 10500
    assert value("cloudrun.request.count", "sum", service="route") == 10512
    assert value("cloudrun.request.latency", "count", region="us-central1") == 100
    assert value("cloudrun.request.latency", "sum", region="us-central1") == 3050
    assert value("cloudrun.request.latency", "count") == 120
    assert 20 <= value("cloudrun.request.latency", "p50", region="us-central1") <= 40
    assert value("cloudrun.container.cpu.utilization", "count") == 28
    assert 0.5 <= value("cloudrun.container.cpu.utilization", "p50") <= 0.6  # bucket [0.5, 0.6)
    assert value("cloudrun.container.instance.count", "max", state="active") == 28
    assert value("cloudsql.cpu.utilization", "max", database="ion-prod:ion-main") == 0.41
    assert value("cloudsql.memory.utilization", "avg") == 0.73
    assert value("cloudsql.replication.lag", "max") == 0.085
    assert value("cloudsql.replication.lag", "count") == 2

    # A run over the same minutes again (cursor moved back, e.g. a restored state) adds nothing.
    store.collection("metric_collector").document("state").set(
        {"cursor": datetime(2026, 3, 2, 11, 50, tzinfo=UTC)}
    )
    assert client.post("/v1/collect", json={}).status_code == 200
    assert value("cloudrun.request.count", "sum", service="route") == 10512
    # An overlapping run reads the minute again after more points landed (Monitoring's late data):
    # with the content as the batch id the second read was stored too and the sum doubled.
    late = json.loads(json.dumps(RECORDINGS["run.googleapis.com/request_count"]))
    late[0]["timeSeries"][0]["points"][0]["value"]["int64Value"] = "5401"
    monkeypatch.setitem(RECORDINGS, "run.googleapis.com/request_count", late)
    store.collection("metric_collector").document("state").set(
        {"cursor": datetime(2026, 3, 2, 11, 50, tzinfo=UTC)}
    )
    assert client.post("/v1/collect", json={}).status_code == 200
    assert value("cloudrun.request.count", "sum", service="route") == 10512  # the first read kept
    # And with the cursor current, a run asks nothing.
    before = len(service.requests)
    again = client.post("/v1/collect", json={}).get_json()
    assert again["minutes"] == 0
    assert len(service.requests) == before


def test_collector_reports_a_monitoring_refusal_as_500_not_503_retry_later(
    client, store, standin, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # PERMISSION_DENIED is no outage a retry cures but a misconfiguration of ours: logged, 500.
    endpoint, _service = standin
    monkeypatch.setenv("ION_MONITORING_ENDPOINT", endpoint)
    monkeypatch.setenv("ION_COLLECTOR_PROJECT", "someone-else")
    monkeypatch.setenv("ION_COLLECTOR_RUN_SERVICES", "route")
    response = client.post("/v1/collect", json={})
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert "someone-else" not in response.get_json()["detail"]  # logged, never answered
    assert store.collection("metric_collector").document("state").get().exists is False
