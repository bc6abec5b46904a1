"""Dashboards over recording rules: every panel's metric query is matched to a declared rule (no
panel wired by hand), and every dashboard built over days of multi-series history (regions,
routes, statuses with error types, personas, cache tiers) on the Firestore emulator shows the same
figures with the rules as from the stored series."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import pytest

from devtools.metric_history import MetricHistory, fold_as_of, write_history
from functions.reports.dashboard_build import build_dashboard
from functions.reports.panels import Dashboard, load_catalog
from functions.reports.source import FirestoreAlertSource, StoreMetricSource
from functions.reports.views import DashboardView
from shared.metrics.build_reads import current_build_reads
from shared.metrics.customer_usage import spec_of
from shared.metrics.query_model import MetricQuery, QueryResult
from shared.metrics.recording import RULE_TAIL, previous_tail, raw_reads, rule_for
from shared.metrics.stamps import MINUTE_STAMPS
from shared.metrics.store import FOLDS, MINUTES
from tests.ingestion.queried import queried
from tests.reports.conftest import NOW

HTTP = "http.server.request.duration"
REGIONS = {"us-central1": 0.020, "europe-west1": 0.030, "asia-southeast1": 0.040}
ROUTES = ["/v2/route", "/v2/feedback", "/v2/recommend", "/health"]
STATUSES = {"200": 0.97, "422": 0.015, "429": 0.01, "503": 0.005}
PERSONAS = ("Lua", "Elro", "Riri", "Nana")


class Asked:
    """A metric source that records the queries a build asks (and answers nothing)."""

    def __init__(self) -> None:
        self.queries: list[MetricQuery] = []

    def query(self, query: MetricQuery) -> QueryResult:
        self.queries.append(query)
        return QueryResult(metric=query.metric, agg=query.agg, series=[])


@pytest.mark.parametrize("region", [None, "europe-west1"])
def test_every_panel_query_of_a_7_day_dashboard_is_answered_by_a_rule(region: str | None) -> None:
    from functions.reports.source import MemoryAlertSource

    catalog = load_catalog()
    unanswered = []
    asked = 0
    for name, dashboard in catalog.dashboards.items():
        source = Asked()
        build_dashboard(dashboard, source, MemoryAlertSource(), window="7d", region=region, now=NOW)
        for query in source.queries:
            if spec_of(query.metric) is not None:
                continue  # kept per customer and day: not series
            asked += 1
            if query.across is not None:
                continue  # combines stored series after aggregating each: read raw by design
            if rule_for(query.metric, query.labels, query.group_by, query.across) is None:
                unanswered.append((name, query.metric, query.agg, sorted(query.labels), query.group_by))
    assert asked > 20
    assert not unanswered, f"declare a recording rule in shared/metrics/catalogue.yaml for: {unanswered}"


class Watching(StoreMetricSource):
    """The store, noting which kinds of ranges the build's queries read (hour rollups, minutes,
    rule hours)."""

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.reduced: set[str] = set()  # the rules (and bucket) ranges were merged by

    def query(self, query: MetricQuery) -> QueryResult:
        result = super().query(query)
        reads = current_build_reads()
        assert reads is not None
        self.kinds |= {key[1].split(":")[0] for key, _ in reads._docs}
        self.reduced |= {rule for _, rule, _ in reads._reduced}
        return result


def minute_of(history: MetricHistory, minute: datetime) -> None:
    load = 1.0 + 0.5 * (minute.hour % 6) / 6
    for region, latency in REGIONS.items():
        for rank, route in enumerate(ROUTES):
            share = 0.6 if rank == 0 else 0.4 / (len(ROUTES) - 1)
            for status, part in STATUSES.items():
                labels = {
                    "service": "routing",
                    "region": region,
                    "http.route": route,
                    "http.request.method": "POST",
                    "http.response.status_code": status,
                }
                if status == "503":
                    labels["error.type"] = "503"
                samples = [latency * 0.8, latency * (1 + rank), latency * 2.5] if status == "200" else [0.4]
                history.observe_weighted(HTTP, labels, minute, samples, 37 * load * share * part + rank)
        for persona in PERSONAS:
            base = {"service": "routing", "region": region, "persona": persona}
            history.increment("ion.routing.persona.selected", base, minute, 5 * load)
            history.observe("ion.routing.confidence", base, minute, [0.5 + 0.1 * PERSONAS.index(persona)])
        for source, n in (("given", 3), ("inferred", 7)):
            history.increment(
                "ion.routing.key.source",
                {"service": "routing", "region": region, "source": source},
                minute,
                n,
            )
        cache = {"service": "routing", "region": region, "endpoint": "route"}
        for tier, result, n in (("l1", "hit", 64), ("l1", "miss", 36), ("l2", "hit", 32), ("l2", "miss", 4)):
            history.increment(
                "ion.cache.requests", {**cache, "tier": tier, "result": result}, minute, n * load
            )
        history.increment(
            "ion.cache.evictions", {**cache, "tier": "l1", "reason": "capacity"}, minute, 2 * load
        )
        for state in ("active", "idle"):
            history.gauge(
                "cloudrun.container.instance.count",
                {"service": "routing", "region": region, "state": state},
                minute,
                9 if state == "active" else 2,
            )
        run = {"service": "routing", "region": region}
        history.gauge("cloudrun.container.cpu.utilization", run, minute, 0.4 + 0.1 * (minute.minute % 4))
        history.gauge("cloudrun.container.memory.utilization", run, minute, 0.5)
        sql = {"region": region, "database": "p:ion"}
        history.gauge("cloudsql.replication.lag", sql, minute, 0.04 + 0.01 * (minute.minute % 3))
        history.gauge("cloudsql.connections", sql, minute, 20 + minute.minute % 5)


def _built_with(
    reads: Callable[[], AbstractContextManager[None]],
    dashboard: Dashboard,
    region: str | None,
    window: str = "7d",
) -> DashboardView:
    """``dashboard``'s build from the store, its tail read the way ``reads`` sets."""
    with reads():
        return build_dashboard(
            dashboard, StoreMetricSource(), FirestoreAlertSource(), window=window, region=region, now=NOW
        )


def figures(view: DashboardView) -> dict[str, object]:
    """Every figure of a built dashboard: values, series points, rows."""
    out: dict[str, object] = {}
    for panel in view.panels:
        out[panel.id] = (
            panel.status,
            panel.value,
            [(s.label, list(s.points)) for s in panel.series],
            [(r.label, r.value, r.status) for r in panel.rows],
        )
    return out


def assert_close(got: object, want: object, where: str = "") -> None:
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9), where
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), where
        assert len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{index}]")
    else:
        assert got == want, where


def test_dashboards_from_the_rules_show_what_the_stored_series_show(fs, frozen) -> None:  # type: ignore[no-untyped-def]
    # Two days of history every 10 minutes, folded as the downsampler would have (with the rules),
    # then the last 3 hours every minute, not folded yet (read from minutes, merged per rule); the
    # week's first days have none (raw and rules agree on nothing too).
    write_history(NOW - timedelta(days=2), NOW - timedelta(hours=3), minute_of, every=10)
    write_history(NOW - timedelta(hours=3), NOW + timedelta(minutes=1), minute_of, every=1, fold=False)
    # The downsampler's run at NOW: nothing to fold yet, the closed hours 09-11 recorded as
    # provisional rule hours (read while their minutes are unchanged), 12 read from its minutes.
    assert fold_as_of(NOW) == 0
    assert fs.collection_group(RULE_TAIL).limit(1).get(), "provisional rule hours written"
    fold = fs.collection(FOLDS).limit(1).get()[0].to_dict()
    assert fold["rules"], "the folds recorded the rules"
    assert fs.collection_group(MINUTE_STAMPS).limit(1).get(), "stamp documents written"
    catalog = load_catalog()
    compared = 0
    for region in (None, "asia-southeast1"):
        for name, dashboard in catalog.dashboards.items():
            watching = Watching()
            with queried() as collections:
                recorded = build_dashboard(
                    dashboard, watching, FirestoreAlertSource(), window="7d", region=region, now=NOW
                )
            if all(p.query is None or p.query.across is None for p in dashboard.panels):
                # Every query a rule answers: the tail from stamp documents, rollups by id.
                assert MINUTES not in collections, name
            before, raw = [_built_with(reads, dashboard, region) for reads in (previous_tail, raw_reads)]
            want = figures(raw)
            for got in (figures(recorded), figures(before)):
                assert got.keys() == want.keys()
                for panel_id, figure in want.items():
                    assert_close(got[panel_id], figure, f"{name}.{panel_id} region={region}")
            if any(p.query is not None and p.query.across is None for p in dashboard.panels):
                assert "rule" in watching.kinds, name  # answered from the rules, not the rollups
                compared += 1
    assert compared >= 10


def test_hour_windows_merged_by_the_rules_show_what_the_stored_series_show(fs, frozen) -> None:  # type: ignore[no-untyped-def]
    # A 1-hour window is charted by the minute: inside a build each metric's minutes are merged
    # per minute by the rule answering a query, once for all of them (240 request series a
    # minute at production's cardinality, a few after the merge).
    window = "1h"
    write_history(NOW - timedelta(hours=2), NOW + timedelta(minutes=1), minute_of, every=1, fold=False)
    catalog = load_catalog()
    merged_by_rules = 0
    for region in (None, "asia-southeast1"):
        for name, dashboard in catalog.dashboards.items():
            watching = Watching()
            recorded = build_dashboard(
                dashboard, watching, FirestoreAlertSource(), window=window, region=region, now=NOW
            )
            raw = _built_with(raw_reads, dashboard, region, window)
            want = figures(raw)
            got = figures(recorded)
            assert got.keys() == want.keys()
            for panel_id, figure in want.items():
                assert_close(got[panel_id], figure, f"{name}.{panel_id} {window} region={region}")
            if any(p.query is not None and p.query.across is None for p in dashboard.panels):
                assert any(rule.endswith("/minute") for rule in watching.reduced), name
                merged_by_rules += 1
    assert merged_by_rules >= 10
