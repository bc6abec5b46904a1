"""The cost service on the emulators, with the real BigQuery client at the BigQuery stand-in:
restatement, late rows, credits, currency, notices on the alerts topic, thresholds once per month,
bad rows rejected (the HTTP API and budget notifications: ``test_http.py``)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devtools.bigquery_standin import StandIn, Table
from devtools.billing_export import ION_PROJECTS, SERVING_PROJECT, Spike, generate
from functions.cost import main as cost_main
from functions.cost.service import CostService, CurrencyMismatch
from functions.cost.settings import CostSettings
from functions.cost.sources import BigQueryBillingSource, MemoryBillingSource, rows_from_dicts
from functions.cost.store import FirestoreCostStore, MemoryCostStore
from shared.messages import AlertTransition
from tests.cost.helpers import NOW, TABLE, pull_all, subscribe

pytestmark = [pytest.mark.emulators, pytest.mark.usefixtures("fresh_cost_clients", "emulator_answers")]

AS_OF = date(2026, 11, 18)


def row(day: date, service: str, cost: str, *, credits: list | None = None, currency: str = "USD",
        export: datetime | None = None, sku: str = "usage") -> dict[str, Any]:  # fmt: skip
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)  # the same date in Pacific time
    return {
        "project": {"id": SERVING_PROJECT},
        "service": {"description": service},
        "sku": {"description": f"{service} {sku}"},
        "usage_start_time": start.isoformat(),
        "usage_end_time": (start + timedelta(hours=1)).isoformat(),
        "location": {"region": "us-central1"},
        "cost": Decimal(cost),
        "currency": currency,
        "credits": credits or [],
        "invoice": {"month": start.strftime("%Y%m")},
        "labels": [],
        "export_time": (export or start + timedelta(hours=3)).isoformat(),
    }


class Published:
    def __init__(self) -> None:
        self.items: list[AlertTransition] = []

    def __call__(self, transition: AlertTransition) -> None:
        self.items.append(transition)


def service_for(standin: StandIn, store: Any, published: Published, **settings: Any) -> CostService:
    return CostService(
        settings=CostSettings(**settings),
        source=BigQueryBillingSource(TABLE, projects=ION_PROJECTS, endpoint=standin.endpoint),  # type: ignore[attr-defined]
        store=store,
        publish=published,
        now=lambda: NOW,
    )


def test_bigquery_source_restates_late_rows_and_credits_exactly(fs, bigquery: StandIn) -> None:  # type: ignore[no-untyped-def]
    base = generate(date(2026, 9, 1), AS_OF, hours=24, seed=4, late_share=0.0).rows
    bigquery.table = Table(TABLE, base)
    store = FirestoreCostStore(fs, now=lambda: NOW)
    published = Published()
    first = service_for(bigquery, store, published).run(AS_OF)
    assert first["source"]["name"] == "bigquery"
    assert first["source"]["fallback"] is False
    assert first["source"]["projects"] is None  # the service's settings name none; the source does
    # one line per SKU, region and day; lines count the export rows they sum (the 35-day window
    # from Oct 15, Pacific midnight = 07:00 UTC), landed by now
    assert first["source"]["rows"] == sum(
        r["usage_start_time"] >= "2026-10-15 07:00:00 UTC" and r["export_time"] <= "2026-11-19 17:00:00 UTC"
        for r in base
    )
    assert first["rejected"] == {"count": 0, "read": first["source"]["lines"], "reasons": []}
    assert first["restated"][-3:] == ["2026-11-16", "2026-11-17", "2026-11-18"]
    mtd = first["month_to_date"]["total"]
    # the query the stand-in saw: standard SQL, typed named parameters, the 35-day window
    body = bigquery.requests[-1]["body"]
    assert body["useLegacySql"] is False
    params = {p["name"]: p["parameterValue"].get("value") for p in body["queryParameters"]}
    # the 35 Pacific days from Oct 15 (PDT, UTC-7) to Nov 18 (PST, UTC-8), as UTC instants
    assert params["since"].startswith("2026-10-15 07:00:00")
    assert params["until"].startswith("2026-11-19 08:00:00")
    assert params["tz"] == "America/Los_Angeles"
    assert params["invoice_month"] == "202611"
    projects = next(p for p in body["queryParameters"] if p["name"] == "projects")
    assert projects["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "STRING"}}

    # A late credit for a settled day (Nov 10) and a late row for yesterday land.
    late = [
        row(date(2026, 11, 10), "Cloud SQL", "0", credits=[{"name": "CUD", "amount": Decimal("-3.333333")}]),
        row(AS_OF, "Cloud Run", "10.005"),
    ]
    bigquery.table = Table(TABLE, base + late)
    second = service_for(bigquery, store, published).run(AS_OF)
    assert second["month_to_date"]["total"] == pytest.approx(mtd - 3.333333 + 10.005, abs=0.006)
    assert [r["date"] for r in second["late_restatements"]] == ["2026-11-10"]
    stored = store.days(date(2026, 11, 10), date(2026, 11, 10))[date(2026, 11, 10)]
    assert stored["revision"] == 2
    before = Decimal(first_day_total(first, "2026-11-10"))
    assert Decimal(stored["total"]) == pytest.approx(before - Decimal("3.333333"), abs=Decimal("0.005"))
    # sums are exact decimals: the stored day is the exact sum of its rows
    exact = sum(
        (Decimal(str(r["cost"])) + sum((Decimal(str(c["amount"])) for c in r["credits"]), Decimal(0)))
        for r in base + late
        if r["usage_start_time"].startswith("2026-11-10")
    )
    assert Decimal(stored["total"]) == exact


def first_day_total(snapshot: dict, day: str) -> str:
    return str(next(d["total"] for d in snapshot["daily"] if d["date"] == day))


def test_rows_not_landed_yet_are_not_served_and_count_when_they_land(fs, bigquery: StandIn) -> None:  # type: ignore[no-untyped-def]
    rows = [row(AS_OF, "Cloud Run", "5"), row(AS_OF, "Cloud Run", "7", export=NOW + timedelta(hours=5))]
    bigquery.table = Table(TABLE, rows)
    store = MemoryCostStore()
    snap = service_for(bigquery, store, Published()).run(AS_OF)
    assert snap["month_to_date"]["total"] == 5
    bigquery.clock = lambda: NOW + timedelta(days=1)
    assert service_for(bigquery, store, Published()).run(AS_OF)["month_to_date"]["total"] == 12


def test_foreign_currency_is_set_aside_and_an_export_all_in_it_stores_nothing(fs, bigquery: StandIn) -> None:  # type: ignore[no-untyped-def]
    bigquery.table = Table(
        TABLE, [row(AS_OF, "Cloud Run", "1"), row(AS_OF, "Cloud SQL", "2", currency="EUR")]
    )
    store = MemoryCostStore()
    snap = service_for(bigquery, store, Published()).run(AS_OF)
    assert snap["month_to_date"]["total"] == 1
    assert snap["rejected"]["count"] == 1
    assert "EUR differs from USD" in snap["rejected"]["reasons"][0]
    store = MemoryCostStore()
    bigquery.table = Table(TABLE, [row(AS_OF, "Cloud Run", "1", currency="EUR")])
    with pytest.raises(CurrencyMismatch, match="EUR"):
        service_for(bigquery, store, Published()).run(AS_OF)
    assert store.day_docs == {}
    assert store.snapshots == {}
    snap = service_for(bigquery, store, Published(), ION_COST_CURRENCY="EUR").run(AS_OF)
    assert snap["currency"] == "EUR"
    # The days name it too: a reader of the days alone (the reports) must not guess dollars.
    assert store.day_docs[AS_OF]["currency"] == "EUR"


def test_thresholds_are_announced_once_per_month(fs) -> None:  # type: ignore[no-untyped-def]
    store = FirestoreCostStore(fs, now=lambda: NOW)
    published = Published()
    rows = rows_from_dicts([row(date(2026, 11, d), "Cloud Run", "100") for d in range(1, 19)])
    service = CostService(
        settings=CostSettings(),
        source=MemoryBillingSource(rows),
        store=store,
        publish=published,
        now=lambda: NOW,
    )
    snap = service.run(AS_OF)  # 1,800 of 3,000 (60%); forecast 3,000 (100%)
    assert snap["budget"]["crossed"] == ["actual-50", "forecast-100"]
    keys = sorted(snap["notices"]["crossings"])
    assert keys == ["crossing/2026-11/configured/actual-50", "crossing/2026-11/configured/forecast-100"]
    severities = {t.labels["threshold"]: t.severity for t in published.items}
    assert severities == {"actual-50": "medium", "forecast-100": "high"}
    service.run(AS_OF)
    service.run(AS_OF - timedelta(days=1))
    assert len(published.items) == 2
    # a new month announces afresh
    december = rows_from_dicts([row(date(2026, 12, d), "Cloud Run", "100") for d in range(1, 17)])
    service.source = MemoryBillingSource(december)
    service.run(date(2026, 12, 16))
    assert len([t for t in published.items if t.labels["month"] == "2026-12"]) == 2


def test_a_publish_that_fails_is_published_by_the_next_run(fs) -> None:  # type: ignore[no-untyped-def]
    store = FirestoreCostStore(fs, now=lambda: NOW)
    rows = rows_from_dicts([row(date(2026, 11, d), "Cloud Run", "100") for d in range(1, 19)])
    calls: list[AlertTransition] = []

    def failing(transition: AlertTransition) -> None:
        raise RuntimeError("pubsub down")

    service = CostService(CostSettings(), MemoryBillingSource(rows), store, failing, lambda: NOW)
    with pytest.raises(RuntimeError):
        service.run(AS_OF)
    service.publish = calls.append
    service.run(AS_OF)
    assert sorted(t.labels["threshold"] for t in calls) == ["actual-50", "forecast-100"]


def test_anomaly_is_published_once_with_service_cost_expected_and_skus(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    raw = generate(
        date(2026, 9, 1), AS_OF, hours=24, seed=9, late_share=0.0, spikes=[Spike(AS_OF, "Cloud Run")]
    ).rows
    subscription = subscribe("alerts")
    service = CostService(
        settings=CostSettings(),
        source=MemoryBillingSource(rows_from_dicts(raw)),
        store=FirestoreCostStore(fs, now=lambda: NOW),
        publish=cost_main._publish,
        now=lambda: NOW,
    )
    snap = service.run(AS_OF)
    assert snap["notices"]["anomalies"] == ["anomaly/2026-11-18/Cloud Run"]
    service.run(AS_OF)
    messages = [m for m in pull_all(subscription) if json.loads(m.data)["rule"] == "cost-cost-anomaly"]
    assert len(messages) == 1
    notice = AlertTransition.model_validate_json(messages[0].data)
    assert notice.severity == "medium"
    assert notice.labels["service"] == "Cloud Run"
    assert float(notice.annotations["cost"]) > 2.5 * float(notice.annotations["expected"])
    assert "CPU Allocation Time" in notice.annotations["top_skus"]


def test_cost_per_request_and_missing_customer_label(fs) -> None:  # type: ignore[no-untyped-def]
    from functions.cost.settings import DEFAULT_PRICES_FILE
    from functions.cost.usage import load_prices

    class FakeSeries:
        def __init__(self, labels: dict[str, str], value: float) -> None:
            self.labels = labels
            self.points = [(NOW, value)]

    class Metrics:
        def __init__(self, with_customers: bool, routed: bool = True) -> None:
            self.with_customers = with_customers
            self.routed = routed

        def query(self, metric: str, agg: str, start: datetime, end: datetime, **kw: Any) -> list:
            if metric == "http.server.request.duration" and self.routed:
                return [
                    FakeSeries({"http.route": "/v2/route"}, 4000),
                    FakeSeries({"http.route": "/health"}, 50),
                ]
            if metric == "ion.routing.customer.requests" and self.with_customers:
                return [FakeSeries({"customer": "acme"}, 3000), FakeSeries({"customer": "globex"}, 1000)]
            if metric == "cloudrun.container.instance.count":
                return [FakeSeries({}, 2.0)]
            return []

    rows = rows_from_dicts([row(date(2026, 11, d), "Cloud Run", "10") for d in range(1, 19)])
    for with_customers, expect in ((False, None), (True, {"acme": 135.0, "globex": 45.0})):
        service = CostService(
            CostSettings(), MemoryBillingSource(rows), MemoryCostStore(), Published(), lambda: NOW,
            metrics=Metrics(with_customers), prices=load_prices(DEFAULT_PRICES_FILE),
        )  # fmt: skip
        snap = service.run(AS_OF)
        assert snap["per_request"]["requests"] == 4000
        assert snap["per_request"]["cost_per_request"] == pytest.approx(180 / 4000)
        if expect is None:
            assert snap["per_customer"]["customers"] is None
            assert "customer" in snap["per_customer"]["note"]
        else:
            assert {k: v["cost"] for k, v in snap["per_customer"]["customers"].items()} == expect
        today = snap["today"]
        assert today["label"].startswith("estimate")
        # 2 instances x 9 h x (1 vCPU x 0.000024 + 0.5 GiB x 0.0000025) per second
        assert today["by_service"]["Cloud Run"] == pytest.approx(
            2 * 3600 * (0.000024 + 0.5 * 0.0000025), abs=0.01
        )
    # Customer-key requests counted while routing's request histogram has none this month (it was
    # a division by zero, a 500): the cost is shared over the customer-key requests, and said so.
    service = CostService(
        CostSettings(), MemoryBillingSource(rows), MemoryCostStore(), Published(), lambda: NOW,
        metrics=Metrics(True, routed=False), prices=load_prices(DEFAULT_PRICES_FILE),
    )  # fmt: skip
    snap = service.run(AS_OF)
    assert snap["per_request"]["cost_per_request"] is None
    assert {k: v["cost"] for k, v in snap["per_customer"]["customers"].items()} == {
        "acme": 135.0,
        "globex": 45.0,
    }
    assert "fewer than customer-key requests" in snap["per_customer"]["note"]
