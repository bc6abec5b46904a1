"""The metric catalogue against its producers and readers: routing's instruments and the
collector's names are declared in it, and every default alert rule and every metric query the
scaling, cost and health capabilities make reads a metric and labels some producer emits.

The pattern for a new reader (a dashboard panel): collect what it asks for (metric, label names or
label -> value) and assert ``shared.metrics.catalogue.check(metric, labels) == []``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from devtools.processes import free_port
from functions.alerts.engine import Evaluator
from functions.alerts.rule_catalogue import catalogue_problems
from functions.alerts.rules import HeartbeatRule, load_rules
from functions.alerts.source import ReplaySource
from functions.alerts.state_store import MemoryStateStore
from functions.ingestion import collector
from functions.routing.cache import TwoTierCache
from functions.routing.metrics import RoutingMetrics
from functions.routing.telemetry import Telemetry, TelemetrySettings
from shared import clock
from shared.clock import FrozenClock
from shared.metrics import query as query_api
from shared.metrics.catalogue import check, load_catalogue
from shared.metrics.query_model import QueryResult
from tests.routing.conftest import MetricsSink

CATALOGUE = load_catalogue()
RECORDING = Path(__file__).parent / "ingestion" / "recordings" / "monitoring_list_time_series.json"
KINDS = {"sum": "counter", "histogram": "histogram", "gauge": "gauge"}
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# -- the catalogue itself --------------------------------------------------------------------------


def test_check_names_unknown_metrics_labels_and_values() -> None:
    assert check("ion.cache.requests", {"tier": "l1", "result": "hit"}) == []
    assert check("system.cpu.utilization", ["service"]) == [
        "unknown metric 'system.cpu.utilization': no producer emits it; did you mean "
        "cloudsql.cpu.utilization, cloudrun.container.cpu.utilization, cloudsql.memory.utilization?"
    ]
    problems = check("ion.cache.requests", {"tier": "l3", "cache.level": None})
    assert problems == [
        "metric 'ion.cache.requests' label 'tier' is never 'l3' (values: l1, l2)",
        "metric 'ion.cache.requests' has no label 'cache.level' "
        "(routing sets: endpoint, region, result, service, tier)",
    ]


def test_every_rate_reads_emitted_metrics_and_the_hit_rates_are_defined() -> None:
    assert {"cache.hit_rate.l1", "cache.hit_rate.l2", "cache.hit_rate.combined"} <= set(CATALOGUE.rates)
    for name in CATALOGUE.rates:
        assert CATALOGUE.check_rate(name) == [], name


# -- producers -------------------------------------------------------------------------------------


def test_routing_creates_exactly_the_catalogued_instruments() -> None:
    telemetry = Telemetry("routing", publish=lambda payload: None, settings=TelemetrySettings(enabled=True))
    RoutingMetrics(telemetry)
    instruments = telemetry._instruments
    declared = CATALOGUE.produced_by("routing")
    assert sorted(instruments) == sorted(declared)
    for name, instrument in instruments.items():
        assert KINDS[instrument.kind] == declared[name].kind, name
        assert instrument.unit == declared[name].unit, name


def _recorded_series() -> Iterator[tuple[str, Any]]:
    recording = json.loads(RECORDING.read_text())
    for metric_type, pages in recording.items():
        if metric_type.startswith("_"):
            continue
        for page in pages:
            for series in page["timeSeries"]:
                yield (
                    metric_type,
                    SimpleNamespace(
                        metric=SimpleNamespace(labels=series["metric"]["labels"]),
                        resource=SimpleNamespace(labels=series["resource"]["labels"]),
                    ),
                )


def test_the_collector_writes_only_catalogued_names_and_labels() -> None:
    declared = CATALOGUE.produced_by("collector")
    assert sorted(s.name for s in collector.SOURCES) == sorted(declared)
    for source in collector.SOURCES:
        assert source.unit == declared[source.name].unit, source.name
    by_type = {s.metric_type: s for s in collector.SOURCES}
    seen = set()
    for metric_type, series in _recorded_series():
        source = by_type[metric_type]
        labels = collector._labels(source, series)  # the very labels the collector stores
        assert check(source.name, labels) == [], (source.name, labels)
        seen.add(source.name)
    assert len(seen) >= 7  # the recording covers the Cloud Run and Cloud SQL series the rules read


# -- readers: the default alert rules ------------------------------------------------------------


DEFAULT_RULES = [r for r in load_rules() if not isinstance(r, HeartbeatRule)]


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda r: r.name)
def test_every_default_rule_reads_what_a_producer_emits(rule: Any) -> None:
    assert catalogue_problems([rule], CATALOGUE) == []


def test_the_cache_rules_use_the_combined_hit_rate() -> None:
    combined = CATALOGUE.rates["cache.hit_rate.combined"]
    cache_rules = [r for r in DEFAULT_RULES if r.name.startswith("cache-hit-rate")]
    assert len(cache_rules) == 2
    for rule in cache_rules:
        assert rule.metric == combined.numerator.metric == combined.denominator.metric
        assert rule.ratio.numerator.match == combined.numerator.match
        assert rule.ratio.denominator.match == combined.denominator.match


# -- readers: the capabilities' metric queries ---------------------------------------------------


@pytest.fixture
def recorded_queries(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every MetricQuery run in-process through the query API's ``run_query``, answered empty."""
    seen: list[Any] = []

    def record(query: Any) -> Any:
        seen.append(query)
        return QueryResult(metric=query.metric, agg=query.agg, series=[])

    monkeypatch.setattr(query_api, "run_query", record)
    return seen


def _problems(queries: list[Any]) -> set[str]:
    problems: set[str] = set()
    for q in queries:
        problems.update(check(q.metric, {**dict.fromkeys(q.group_by), **q.labels}))
    return problems


def test_scaling_queries_read_emitted_metrics(recorded_queries: list[Any]) -> None:
    from functions.scaling.sources import QueryApiHistory

    history = QueryApiHistory("route")
    history.inputs(["us-central1"], {"us-central1": "route"}, T0, 2)
    history.hourly_requests(T0 - timedelta(days=1), T0, {"us-central1": "route"})
    assert {q.metric for q in recorded_queries} == {
        "http.server.request.duration",
        "cloudrun.request.count",
        "cloudrun.container.instance.count",
        "cloudrun.container.cpu.utilization",
    }
    assert _problems(recorded_queries) == set()


def test_health_queries_read_emitted_metrics(recorded_queries: list[Any]) -> None:
    from functions.health.usage import MetricUsage

    usage = MetricUsage()
    usage.customers_usage(date(2026, 3, 2), 28)
    usage.persona_counts(date(2026, 2, 2), 4)
    assert {q.metric for q in recorded_queries} == {
        "ion.routing.customer.requests",
        "ion.routing.customer.feedback",
        "ion.routing.persona.selected",
    }
    assert _problems(recorded_queries) == set()


def test_cost_queries_read_emitted_metrics(recorded_queries: list[Any]) -> None:
    from functions.cost.usage import StoreMetrics, estimate_today, load_prices, routed_requests

    prices = load_prices(Path(__file__).resolve().parents[1] / "functions" / "cost" / "prices.yaml")
    estimate_today(StoreMetrics(), prices, T0)
    routed_requests(StoreMetrics(), T0 - timedelta(days=30), T0, service="route", customer_label="customer")
    assert {q.metric for q in recorded_queries} >= {
        "cloudrun.container.instance.count",
        "cloudrun.request.count",
        "http.server.request.duration",
    }
    assert "ion.routing.customer.requests" in {q.metric for q in recorded_queries}
    assert _problems(recorded_queries) == set()


# -- the rules fire on what routing emits (through the alert engine's replay source) --------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _minute_into(source: ReplaySource, sink: MetricsSink, telemetry: Telemetry, at: datetime) -> None:
    """Ship routing's batch and store its cache counts as one minute of points."""
    telemetry.flush()
    resource = {"service": "routing", "region": "us-central1"}
    for labels, value in sink.points("ion.cache.requests"):
        source.add("ion.cache.requests", {**resource, **labels}, [(at, float(value))])
    sink.payloads.clear()


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    frozen = FrozenClock(T0)
    previous = clock.set_clock(frozen)
    yield frozen
    clock.set_clock(previous)


def test_redis_unavailable_fires_while_traffic_flows(redis_url: str, frozen: FrozenClock) -> None:
    """Routing's real cache on a real Redis, then on a closed port: requests keep flowing (and keep
    counting tier=l2 lookups), the default rule fires, and clears once Redis is back."""
    sink, ticks = MetricsSink(), Ticks()
    telemetry = Telemetry("routing", publish=sink.publish, settings=TelemetrySettings(enabled=True))
    alive = redis.Redis.from_url(redis_url)
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    current = {"client": alive}
    cache = TwoTierCache(
        RoutingMetrics(telemetry),
        l1_max_items=5,
        l1_ttl_seconds=30,
        l2_ttl_seconds=600,
        redis_retry_seconds=5,
        redis_client=lambda: current["client"],
        timer=ticks,
    )
    rule = next(r for r in DEFAULT_RULES if r.name == "redis-unavailable")
    evaluator = Evaluator(ReplaySource(), MemoryStateStore())
    source = evaluator.source
    states: list[str] = []
    for minute in range(16):
        current["client"] = dead if 4 <= minute < 10 else alive
        for i in range(20):  # 20 lookups a minute over 10 keys: L1 misses go on to L2
            ticks.now = minute * 60 + i * 3
            key = f"k{(minute * 7 + i) % 10}"
            if cache.get("route", key) is None:
                cache.put("route", key, {"v": key})
        at = T0 + timedelta(minutes=minute + 1)
        _minute_into(source, sink, telemetry, at)
        frozen.set(at)
        evaluator.run([rule], at)
        snapshot = evaluator.store.snapshot(rule.name)
        states.append(next(iter(snapshot.values())).state if snapshot else "inactive")
    alive.close()
    dead.close()
    assert "firing" not in states[:4]
    assert states[6] == "firing"  # down from minute 4: pending, then firing after `for: 1m`
    assert states[-1] == "resolved"  # back from minute 10, kept firing for 2m, then resolved


def test_the_combined_hit_rate_counts_each_lookup_once(frozen: FrozenClock) -> None:
    """100 lookups: 50 L1 hits, 50 misses of which Redis answers 40: L1 50%, L2 80%, combined 90%."""
    source = ReplaySource()
    at = T0 + timedelta(minutes=5)
    labels = {"service": "routing", "region": "us-central1", "endpoint": "route"}
    for tier, result, count in (("l1", "hit", 50), ("l1", "miss", 50), ("l2", "hit", 40), ("l2", "miss", 10)):
        source.add("ion.cache.requests", {**labels, "tier": tier, "result": result}, [(at, count)])
    evaluator = Evaluator(source, MemoryStateStore())
    rules = {r.name: r for r in DEFAULT_RULES}
    for name in ("cache-hit-rate-medium", "cache-hit-rate-low"):
        values = evaluator.values(rules[name], at - timedelta(minutes=10), at)
        assert [round(v, 6) for _, v in values.values()] == [0.9]
        assert evaluator.run([rules[name]], at).transitions == []  # 90% is healthy

    def rate(name: str) -> float:
        spec = CATALOGUE.rates[name]
        total = {
            part: sum(
                value
                for series in source.fetch(
                    query_api_like(spec_part.metric, spec_part.match, at - timedelta(minutes=10), at)
                )
                for _, value in series.points
            )
            for part, spec_part in (("n", spec.numerator), ("d", spec.denominator))
        }
        return total["n"] / total["d"]

    assert (rate("cache.hit_rate.l1"), rate("cache.hit_rate.l2"), rate("cache.hit_rate.combined")) == (
        0.5,
        0.8,
        0.9,
    )


def query_api_like(metric: str, match: dict[str, str], start: datetime, end: datetime) -> Any:
    from functions.alerts.source import Query

    return Query(metric=metric, agg="sum", start=start, end=end, labels=match, group_by=())
