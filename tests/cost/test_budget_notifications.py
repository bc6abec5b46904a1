"""GCP Budget notifications: the documented payload, and one crossing per month whichever source
(the daily snapshot or the budget) sees it first."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from functions.cost import budget_notifications
from functions.cost.service import CostService
from functions.cost.settings import CostSettings
from functions.cost.sources import MemoryBillingSource, rows_from_dicts
from functions.cost.store import MemoryCostStore

NOW = datetime(2026, 11, 19, 9, tzinfo=UTC)
ATTRS = {"billingAccountId": "0A1B2C-3D4E5F-6A7B8C", "budgetId": "b-1", "schemaVersion": "1.0"}


def payload(**extra: object) -> bytes:
    return json.dumps(
        {
            "budgetDisplayName": "ION monthly",
            "costAmount": 1620.0,
            "costIntervalStart": "2026-11-01T08:00:00Z",
            "budgetAmount": 3000.0,
            "budgetAmountType": "SPECIFIED_AMOUNT",
            "currencyCode": "USD",
            **extra,
        }
    ).encode()


def test_documented_payload_parses_and_bad_ones_say_why() -> None:
    attrs, body = budget_notifications.parse(ATTRS, payload(alertThresholdExceeded=0.5))  # type: ignore[misc]
    assert attrs.budgetId == "b-1"
    assert body.alertThresholdExceeded == 0.5
    assert body.month() == "2026-11"
    # an account in UTC+9 starts its month at 15:00 UTC the day before
    assert (
        budget_notifications.parse(ATTRS, payload(costIntervalStart="2026-10-31T15:00:00Z"))[1].month()
        == "2026-11"
    )  # type: ignore[index,union-attr]
    assert "schemaVersion" in budget_notifications.parse({**ATTRS, "schemaVersion": "2.0"}, payload())  # type: ignore[operator]
    assert "costAmount" in budget_notifications.parse(ATTRS, b'{"budgetDisplayName": "x"}')  # type: ignore[operator]


def test_one_crossing_per_month_across_the_snapshot_and_the_budget() -> None:
    store = MemoryCostStore()
    published: list = []
    rows = rows_from_dicts(
        [
            {
                "service": {"description": "Cloud Run"},
                "sku": {"description": "CPU"},
                "usage_start_time": f"2026-11-{d:02d}T12:00:00Z",
                "usage_end_time": f"2026-11-{d:02d}T13:00:00Z",
                "cost": "90",
                "currency": "USD",
            }
            for d in range(1, 19)
        ]
    )
    service = CostService(CostSettings(), MemoryBillingSource(rows), store, published.append, lambda: NOW)
    service.run(date(2026, 11, 18))  # 1,620 of 3,000: actual-50 (and forecast 90%: nothing more)
    assert [t.labels["threshold"] for t in published] == ["actual-50"]

    def deliver(fraction: float, message_id: str) -> list[str]:
        attrs, body = budget_notifications.parse(ATTRS, payload(alertThresholdExceeded=fraction))  # type: ignore[misc]
        return budget_notifications.record(
            attrs,
            body,
            message_id=message_id,
            published_at=NOW,
            store=store,
            publish=published.append,
            now=NOW,
        )

    assert deliver(0.5, "m-1") == []  # the snapshot announced it already: the same budget
    assert deliver(1.0, "m-2") == ["crossing/2026-11/b-1/actual-100"]
    assert deliver(1.0, "m-3") == []
    assert [t.severity for t in published] == ["medium", "high"]
    assert float(store.budget_notifications()[0]["cost"]) == 1620
    # The snapshot now knows the GCP budget of its amount: it announces under that id, and what
    # either announced is not announced again.
    service.run(date(2026, 11, 18))
    assert len(published) == 2


def record_for(
    store: MemoryCostStore, published: list, budget_id: str, amount: float, fraction: float
) -> list[str]:
    attrs, body = budget_notifications.parse(  # type: ignore[misc]
        {**ATTRS, "budgetId": budget_id}, payload(budgetAmount=amount, alertThresholdExceeded=fraction)
    )
    return budget_notifications.record(
        attrs, body, message_id=f"{budget_id}-{fraction}", published_at=NOW, store=store,
        publish=published.append, now=NOW,
    )  # fmt: skip


def test_every_budget_crosses_on_its_own_key() -> None:
    """Another budget on the billing account (here a $500 one of another team) passing 50% took
    the shared key crossing/2026-11/actual-50: ION's own 50% was never announced."""
    store = MemoryCostStore()
    published: list = []
    assert record_for(store, published, "other-team", 500.0, 0.5) == ["crossing/2026-11/other-team/actual-50"]
    assert record_for(store, published, "b-1", 3000.0, 0.5) == ["crossing/2026-11/b-1/actual-50"]
    assert [t.labels["budget_id"] for t in published] == ["other-team", "b-1"]
    assert record_for(store, published, "b-1", 3000.0, 0.5) == []


def test_a_crossing_stored_under_the_old_key_is_not_announced_again() -> None:
    """Migration: keys stored before budget ids (crossing/YYYY-MM/actual-90) still count for their
    month, so a deploy mid-month does not announce a threshold twice."""
    store = MemoryCostStore()
    store.claim_event("crossing/2026-11/actual-90", {"kind": "crossing", "date": "2026-11-10"})
    store.mark_published("crossing/2026-11/actual-90")
    published: list = []
    assert record_for(store, published, "b-1", 3000.0, 0.9) == []
    assert record_for(store, published, "b-1", 3000.0, 1.0) == ["crossing/2026-11/b-1/actual-100"]


def test_a_forecast_crossing_does_not_pass_the_actual_cost_off_as_the_forecast() -> None:
    """forecastThresholdExceeded 1.0 with costAmount 1,620 of 3,000 was announced as "forecast
    cost passed 100% (1620 of 3000 USD)" with the value 54 against the threshold 100: the
    budget sends no forecast amount, and 54% is the actual share."""
    attrs, body = budget_notifications.parse(ATTRS, payload(forecastThresholdExceeded=1.0))  # type: ignore[misc]
    store = MemoryCostStore()
    published: list = []
    keys = budget_notifications.record(
        attrs, body, message_id="m-forecast", published_at=NOW, store=store, publish=published.append, now=NOW
    )
    assert keys == ["crossing/2026-11/b-1/forecast-100"]
    (notice,) = published
    summary = notice.annotations["summary"]
    assert "forecast" in summary
    assert "(1620 of 3000 USD)" not in summary
    assert "actual so far 1620 USD (54.0%)" in summary
    assert notice.value is None or notice.value >= notice.threshold
    claim = store.events("crossing", date(2026, 11, 1))[0]
    assert claim["value_pct"] is None
    assert claim["actual_pct"] == pytest.approx(54.0)
    # An actual crossing keeps its value: the actual share of the budget.
    attrs, body = budget_notifications.parse(ATTRS, payload(alertThresholdExceeded=0.5))  # type: ignore[misc]
    budget_notifications.record(
        attrs, body, message_id="m-actual", published_at=NOW, store=store, publish=published.append, now=NOW
    )
    assert published[-1].value == pytest.approx(54.0)
    assert "(1620 of 3000 USD)" in published[-1].annotations["summary"]


@pytest.mark.emulators
@pytest.mark.usefixtures("fresh_cost_clients")
def test_a_stale_notification_delivered_late_never_overwrites_newer_figures(fs) -> None:  # type: ignore[no-untyped-def]
    """Pub/Sub does not keep order: a notification whose first delivery failed comes back after a
    newer one was stored. The figures kept are the newest published, whatever the arrival order."""
    from datetime import timedelta

    import functions_framework

    from functions.cost.store import BUDGET_NOTIFICATIONS
    from shared.topology import ROOT
    from tests.pubsub_helpers import push_envelope

    app = functions_framework.create_app("snapshot_cost_budget", str(ROOT / "main.py"))
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=8, minute=0, second=0, microsecond=0).isoformat()
    newer = payload(costAmount=1800.0, costIntervalStart=month_start)
    older = payload(costAmount=1620.0, costIntervalStart=month_start)
    for data, message_id, published in ((newer, "m-2", now), (older, "m-1", now - timedelta(hours=6))):
        envelope = push_envelope(data, message_id=message_id, publish_time=published, attributes=ATTRS)
        answer = app.test_client().post("/projects/ion-ops-test/topics/budget-notifications", json=envelope)
        assert answer.status_code == 200
    [stored] = [d.to_dict() for d in fs.collection(BUDGET_NOTIFICATIONS).stream()]
    assert Decimal(stored["cost"]) == 1800
    assert stored["message_id"] == "m-2"
