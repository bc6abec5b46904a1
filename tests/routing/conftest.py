"""Fixtures of the routing tests: the function served by functions-framework's real app, with a
fresh instance state (settings, caches, metrics) per test."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from functions.routing.ratelimit import settle_refills
from functions.routing.service import reset_service
from shared.topology import ROOT

SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / "persona-routing.json"
REPO_REFERENCE = ROOT / "functions" / "routing" / "persona_routing.json"


def load_reference() -> dict[str, Any]:
    """The project's reference data (the product folder beside the repository when present, else
    the copy the function ships)."""
    path = SHARED_REFERENCE if SHARED_REFERENCE.exists() else REPO_REFERENCE
    return json.loads(Path(path).read_text())


@pytest.fixture(autouse=True)
def _fresh_routing_state() -> Iterator[None]:
    # No metric batch is published unless a test asks for it.
    os.environ.setdefault("ION_METRICS_FLUSH_SECONDS", "3600")
    os.environ.setdefault("ION_METRICS_ENABLED", "false")
    os.environ.setdefault("ION_CACHE_WARM_ITEMS", "0")
    reset_service()
    yield
    reset_service()
    # A rate-limit lease refill still in flight would take tokens from the next test's Redis.
    assert settle_refills(), "a rate-limit lease refill never finished"


@pytest.fixture
def make_client() -> Callable[..., Any]:
    """A test client of the `route` entry point, built after the test has set its environment."""

    def make(**env: str) -> Any:
        os.environ.update(env)
        reset_service()
        app = functions_framework.create_app("route", str(ROOT / "main.py"), "http")
        return app.test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


class MetricsSink:
    """Collects the metric batches the routing function would publish, decoded."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def publish(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        found = []
        for payload in self.payloads:
            request = ExportMetricsServiceRequest.FromString(payload)
            for scope in request.resource_metrics[0].scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        labels = {
                            kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes
                        }
                        value = (
                            point.count
                            if kind == "exponential_histogram"
                            else getattr(point, point.WhichOneof("value"))
                        )
                        found.append((labels, value))
        return found

    def total(self, name: str, **labels: Any) -> float:
        return sum(v for got, v in self.points(name) if all(got.get(k) == w for k, w in labels.items()))


@pytest.fixture
def collected(make_client: Callable[..., Any]) -> Callable[..., tuple[Any, Any, MetricsSink]]:
    """(client, service, sink): the function with its metric batches collected in ``sink``.

    ``service.telemetry.flush()`` ships the current batch into the sink."""
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.service import RoutingService, install_service
    from functions.routing.telemetry import Telemetry, TelemetrySettings

    def make(**env: str) -> tuple[Any, Any, MetricsSink]:
        client = make_client(**env)
        sink = MetricsSink()
        telemetry = Telemetry("routing", publish=sink.publish, settings=TelemetrySettings(enabled=True))
        service = install_service(RoutingService(metrics=RoutingMetrics(telemetry)))
        return client, service, sink

    return make
