"""Dashboards built from seeded history on the Firestore emulator: every figure checked against
the traffic that produced it, the status bands, alerts and incidents from the alert documents."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.reports.dashboard_build import build_dashboard
from functions.reports.panels import Band, load_catalog
from functions.reports.source import FirestoreAlertSource, StoreMetricSource
from tests.reports.conftest import NOW, minutes
from tests.reports.traffic import seed


def view_of(name: str, window: str = "1h", region: str | None = None):  # type: ignore[no-untyped-def]
    catalog = load_catalog()
    return build_dashboard(
        catalog.dashboards[name],
        StoreMetricSource(),
        FirestoreAlertSource(),
        window=window,
        region=region,
        now=NOW,
    )


def panel(view, panel_id: str):  # type: ignore[no-untyped-def]
    return next(p for p in view.panels if p.id == panel_id)


def test_overview_figures_match_the_traffic(fs, frozen) -> None:
    expected = seed(minutes(NOW + timedelta(minutes=1), 60), error_every=6)
    view = view_of("overview")
    availability = panel(view, "availability")
    assert availability.value == pytest.approx(1 - expected.errors / expected.requests)
    # 30 errors in 1,830 requests: 98.4%, a breach of the 99.95% target.
    assert availability.status == "breach"
    assert panel(view, "error_rate").value == pytest.approx(expected.errors / expected.requests)
    combined = (expected.l1_hit + expected.l2_hit) / (expected.l1_hit + expected.l1_miss)
    cache = panel(view, "cache_hit")
    assert cache.value == pytest.approx(combined)
    assert cache.status == "ok"  # 96%: above the 80% floor, never "bad" for being above 85%
    # The minute holding NOW (12:00:30) is 30 s old: its 30 seeded requests are a rate over 30 s
    # (the query API's rate is over the time its rollups cover, up to now).
    assert panel(view, "throughput").value == pytest.approx((expected.requests + 30) / 3600)
    assert panel(view, "latency_p95").value == pytest.approx(0.040, rel=0.02)
    assert panel(view, "latency_p95").status == "ok"
    assert view.status == "breach"
    assert len(panel(view, "availability").series[0].points) == 60


def test_region_filter_and_regional_targets(fs, frozen) -> None:
    seed(minutes(NOW + timedelta(minutes=1), 30))
    view = view_of("performance", region="europe-west1")
    assert panel(view, "latency_p99").value == pytest.approx(0.030, rel=0.02)
    regions = panel(view_of("performance"), "regions")
    rows = {r.label: r for r in regions.rows}
    assert set(rows) == {"us-central1", "europe-west1", "asia-southeast1"}
    # us-central1's median 20 ms misses its 10 ms regional target; Europe's 30 ms meets 35 ms.
    assert rows["us-central1"].status == "warning"
    assert rows["europe-west1"].status == "ok"
    assert rows["asia-southeast1"].status == "ok"


def test_breakdowns_infrastructure_and_cache(fs, frozen) -> None:
    expected = seed(minutes(NOW + timedelta(minutes=1), 20), error_every=5)
    reliability = view_of("reliability")
    rows = {r.label: r for r in panel(reliability, "errors_by_status").rows}
    assert {k: r.value for k, r in rows.items()} == expected.by_status
    assert rows["503"].share == pytest.approx(expected.by_status["503"] / expected.requests)
    infra = view_of("infrastructure")
    instances = panel(infra, "instances")
    assert {s.label for s in instances.series} == {"us-central1", "europe-west1", "asia-southeast1"}
    seeded_from = NOW.replace(second=0) - timedelta(minutes=19)
    for s in instances.series:
        assert [v for t, v in s.points if t >= seeded_from] == [pytest.approx(4.0)] * 20
    assert panel(infra, "db_lag").value == pytest.approx(0.04)
    assert panel(infra, "db_lag").status == "ok"
    cache = view_of("cache")
    assert panel(cache, "l1_hit").value == pytest.approx(0.64)
    assert panel(cache, "l2_hit").value == pytest.approx(32 / 36)
    assert panel(cache, "l2_unavailable").status == "ok"


def test_empty_store_says_no_data(fs, frozen) -> None:
    view = view_of("overview", window="7d")
    assert panel(view, "availability").status == "no_data"
    assert panel(view, "availability").text == "no data"
    assert panel(view, "active_alerts").status == "ok"


def test_active_alerts_and_incidents_from_the_alert_documents(fs, frozen) -> None:
    fs.collection("alert_states").document("a1").set(
        {
            "fingerprint": "a1",
            "rule": "latency-p95-high",
            "kind": "threshold",
            "severity": "high",
            "labels": {"region": "europe-west1"},
            "state": "firing",
            "firing_since": NOW - timedelta(minutes=7),
            "value": 0.12,
            "threshold": 0.1,
        }
    )
    fs.collection("alert_states").document("a2").set(
        {
            "fingerprint": "a2",
            "rule": "cpu-high",
            "kind": "threshold",
            "severity": "medium",
            "labels": {},
            "state": "resolved",
        }
    )

    def transition(tid: str, state: str, at, ends=None):  # type: ignore[no-untyped-def]
        body = {
            "transition_id": tid,
            "fingerprint": "f1",
            "rule": "error-rate-critical",
            "kind": "threshold",
            "state": state,
            "previous_state": "pending",
            "severity": "critical",
            "metric": "m",
            "labels": {},
            "annotations": {"summary": "Error rate 0.02 > 1% of requests"},
            "starts_at": (NOW - timedelta(minutes=40)).isoformat(),
            "ends_at": ends.isoformat() if ends else None,
            "evaluated_at": at.isoformat(),
        }
        fs.collection("alert_transitions").document(tid).set(
            {"transition": body, "created_at": at, "published": True}
        )

    transition("f1-1", "firing", NOW - timedelta(minutes=40))
    transition("f1-2", "resolved", NOW - timedelta(minutes=25), ends=NOW - timedelta(minutes=25))
    overview = view_of("overview")
    active = panel(overview, "active_alerts")
    assert [a.rule for a in active.alerts] == ["latency-p95-high"]
    assert active.status == "breach"
    assert panel(view_of("overview", region="us-central1"), "active_alerts").alerts == []
    incidents = panel(view_of("reliability"), "incidents").incidents
    assert len(incidents) == 1
    assert incidents[0].duration_seconds == 15 * 60
    assert not incidents[0].ongoing


@pytest.mark.parametrize(
    ("band", "value", "status"),
    [
        (Band(better="higher", ok=0.8, breach=0.7), 0.9, "ok"),  # the cache band: 90% is good
        (Band(better="higher", ok=0.8, breach=0.7), 0.75, "warning"),
        (Band(better="higher", ok=0.8, breach=0.7), 0.69, "breach"),
        (Band(better="lower", ok=0.05, breach=0.1), 0.05, "ok"),
        (Band(better="lower", ok=0.05, breach=0.1), 0.1, "warning"),
        (Band(better="lower", ok=0.05, breach=0.1), 0.2, "breach"),
        (Band(better="lower", ok=0.5, breach=0.5), 0.6, "breach"),
        (Band(better="lower", ok=0.5, breach=0.5), None, "no_data"),
    ],
)
def test_bands(band: Band, value: float | None, status: str) -> None:
    assert band.status(value) == status
