"""The metric names something emits today, found in the producers' own code: routing's
instruments, the collector's sources, and the names the default alert rules read. Issue 16 will
keep a metric catalogue as data; until then this is the one list panels are checked against."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from shared.topology import ROOT

# The labels each producer sets, as read from its code (routing: service.py, cache.py,
# feedback_api.py, shared/telemetry.py's resource; the collector: _labels and Monitoring's own).
RESOURCE_LABELS = {"service", "region"}
LABELS: dict[str, set[str]] = {
    "http.server.request.duration": RESOURCE_LABELS
    | {"http.route", "http.request.method", "http.response.status_code", "error.type"},
    "ion.cache.requests": RESOURCE_LABELS | {"tier", "result", "endpoint"},
    "ion.cache.evictions": RESOURCE_LABELS | {"tier", "endpoint", "reason"},
    "ion.routing.persona.selected": RESOURCE_LABELS | {"persona"},
    "ion.routing.confidence": RESOURCE_LABELS | {"persona"},
    "ion.routing.key.source": RESOURCE_LABELS | {"source"},
    "ion.routing.feedback": RESOURCE_LABELS | {"persona", "helpful", "outcome"},
    "cloudrun.container.instance.count": {"service", "region", "state"},
    "cloudrun.container.cpu.utilization": {"service", "region"},
    "cloudrun.container.memory.utilization": {"service", "region"},
    "cloudsql.replication.lag": {"database", "region"},
    "cloudsql.connections": {"database", "region"},
}


def routing_metric_names() -> set[str]:
    """First argument of every ``telemetry.counter/histogram/gauge(...)`` in routing's metrics."""
    tree = ast.parse((ROOT / "functions" / "routing" / "metrics.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("counter", "histogram", "gauge")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def collector_metric_names() -> set[str]:
    from functions.ingestion.collector import SOURCES

    return {source.name for source in SOURCES}


def rule_metric_names(path: Path | None = None) -> set[str]:
    data = yaml.safe_load((path or ROOT / "functions" / "alerts" / "rules.yaml").read_text())
    return {rule["metric"] for rule in data["rules"]}


def emitted_metric_names() -> set[str]:
    """Metrics with a producer in this repository (the alert rules only read, so they are not
    producers: a name found only there is emitted by nothing here)."""
    return routing_metric_names() | collector_metric_names()
