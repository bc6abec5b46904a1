"""The daily cost run over its ports: billing source, store, metric store, notices.

One run for ``as_of`` (default: yesterday, UTC):

1. query the billing source for the last ``window_days`` (35) days; older days come from the
   stored daily documents (anomaly baselines look back up to eight weeks);
2. restate: the last ``restate_days`` (3) days are rewritten at every run, since their rows are
   still landing; an older day is rewritten only if its figures changed (a row later than that),
   and the snapshot lists it under ``late_restatements``;
3. build the snapshot (``functions.cost.snapshot``), add today's live estimate, the cost per
   request and per customer;
4. announce, each once: budget thresholds crossed this month and anomalies of the restated days
   (claimed in the store, published as notices on ``alerts``, then marked published);
5. store the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from functions.cost.anomalies import AnomalyParams
from functions.cost.budget import DEFAULT_THRESHOLDS, crossed, crossing_severity
from functions.cost.ledger import days_between, fold, month_start
from functions.cost.settings import CostSettings
from functions.cost.snapshot import SnapshotParams, build_snapshot
from functions.cost.sources import BillingSource
from functions.cost.store import CostStore, day_from_doc, day_to_doc, same_figures
from functions.cost.usage import Metrics, PriceFile, estimate_today, routed_requests
from shared.logging import get_logger
from shared.messages import AlertTransition
from shared.notices import notice_transition

log = get_logger("cost")


class CurrencyMismatch(ValueError):
    pass


@dataclass
class CostService:
    settings: CostSettings
    source: BillingSource
    store: CostStore
    publish: Callable[[AlertTransition], Any]
    now: Callable[[], datetime]
    metrics: Metrics | None = None
    prices: PriceFile | None = None
    opportunities: Callable[[], Any] | None = None

    @property
    def currency(self) -> str:
        return self.settings.currency

    def params(self) -> SnapshotParams:
        s = self.settings
        return SnapshotParams(
            budget=s.budget,
            target=s.target,
            window_days=s.window_days,
            anomalies=AnomalyParams(min_change=s.anomaly_min_change, z=s.anomaly_z),
        )

    def run(self, as_of: date | None = None) -> dict[str, Any]:
        now = self.now()
        as_of = as_of or (now.date() - timedelta(days=1))
        s = self.settings
        params = self.params()
        first = as_of - timedelta(days=s.window_days - 1)
        rows = self.source.rows(first, as_of)
        currencies = sorted({r.currency for r in rows})
        if currencies and currencies != [self.currency]:
            raise CurrencyMismatch(
                f"the billing export is in {', '.join(currencies)} but budgets are set in {self.currency} "
                "(ION_COST_CURRENCY); convert the budget or set the currency"
            )
        queried = fold(rows, until=as_of, since=first)
        lookback = first - timedelta(days=7 * params.anomalies.max_weeks)
        stored = self.store.days(lookback, as_of)
        history = {d: day_from_doc(doc) for d, doc in stored.items() if d < first}
        history.update(queried)

        settled_before = as_of - timedelta(days=s.restate_days - 1)
        restated: list[str] = []
        late: list[dict[str, Any]] = []
        for day in days_between(first, as_of):
            cost = queried.get(day)
            if cost is None:
                continue
            doc = day_to_doc(cost)
            old = stored.get(day)
            changed = old is None or not same_figures(old, doc)
            if day >= settled_before or changed:
                revision = int((old or {}).get("revision", 0)) + (1 if changed else 0)
                self.store.put_day(
                    {**doc, "revision": revision, "restated_at": now, "settled": day < settled_before}
                )
                restated.append(day.isoformat())
                if old is not None and changed and day < settled_before:
                    late.append({"date": day.isoformat(), "was": old["total"], "now": doc["total"]})
                    log.warning("late billing rows restated a settled day", extra={"date": day.isoformat()})

        snapshot = build_snapshot(history, as_of, currency=self.currency, params=params)
        doc: dict[str, Any] = snapshot.model_dump(mode="json")
        doc["source"] = {"name": self.source.name, "fallback": self.source.fallback, "rows": len(rows)}
        doc["restated"] = restated
        doc["late_restatements"] = late
        doc["generated_at"] = now.isoformat()
        doc.update(self._usage_figures(snapshot, as_of, now))
        doc["opportunities"] = self._opportunities()
        doc["notices"] = self._announce(snapshot, as_of, now, settled_before)
        self.store.put_snapshot(as_of, doc)
        log.info(
            "cost snapshot stored",
            extra={"as_of": as_of.isoformat(), "mtd": snapshot.month_to_date.total, "rows": len(rows)},
        )
        return doc

    def _opportunities(self) -> dict[str, Any]:
        """Savings opportunities; a Recommender failure is reported in the snapshot, not fatal."""
        if self.opportunities is None:
            return {"items": None, "total_monthly_saving": None, "note": "Recommender API not configured"}
        try:
            return self.opportunities().model_dump(mode="json")
        except Exception as exc:  # noqa: BLE001 - the snapshot stands without them; said in it
            log.warning("recommender API failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return {"items": None, "total_monthly_saving": None, "note": f"Recommender API failed: {exc}"}

    def _usage_figures(self, snapshot: Any, as_of: date, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.metrics is None:
            note = "no metric store configured"
            out["today"] = None
            out["per_request"] = {"cost_per_request": None, "requests": None, "note": note}
            out["per_customer"] = {"customers": None, "note": note}
            return out
        out["today"] = (
            estimate_today(self.metrics, self.prices, now).model_dump(mode="json") if self.prices else None
        )
        start = datetime.combine(month_start(as_of), time(0), tzinfo=UTC)
        end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC)
        counts = routed_requests(
            self.metrics,
            start,
            end,
            service=self.settings.routing_service,
            customer_label=self.settings.customer_label,
        )
        mtd = snapshot.month_to_date.total
        out["per_request"] = {
            "requests": counts.total,
            "cost_per_request": (mtd / counts.total) if counts.total else None,
            "cost_per_million": round(mtd / counts.total * 1e6, 2) if counts.total else None,
            "note": None if counts.total else "no routed requests in the metric store this month",
        }
        if counts.by_customer is None:
            out["per_customer"] = {"customers": None, "note": counts.customer_note}
        else:
            attributed = sum(counts.by_customer.values())
            out["per_customer"] = {
                "customers": {
                    name: {
                        "requests": n,
                        "share": n / counts.total,
                        "cost": round(mtd * n / counts.total, 2),
                    }
                    for name, n in sorted(counts.by_customer.items())
                },
                "unattributed_requests": counts.unattributed,
                "unattributed_cost": round(mtd * counts.unattributed / counts.total, 2)
                if counts.total
                else 0.0,
                "attributed_share": attributed / counts.total if counts.total else 0.0,
                "note": None,
            }
        return out

    def _announce(
        self, snapshot: Any, as_of: date, now: datetime, settled_before: date
    ) -> dict[str, list[str]]:
        published: dict[str, list[str]] = {"crossings": [], "anomalies": []}
        month = as_of.strftime("%Y-%m")
        budget = snapshot.budget
        for threshold in crossed(budget.used_pct, budget.forecast_pct, DEFAULT_THRESHOLDS):
            key = f"crossing/{month}/{threshold.key}"
            value = budget.used_pct if threshold.kind == "actual" else budget.forecast_pct
            severity = crossing_severity(threshold)
            summary = (
                f"Cost {threshold.kind} at {value:.1f}% of the {budget.amount:,.0f} {snapshot.currency} "
                f"monthly budget (threshold {threshold.percent}%) for {month}"
            )
            claim = {
                "kind": "crossing",
                "date": as_of.isoformat(),
                "month": month,
                "threshold": threshold.key,
                "value_pct": value,
                "severity": severity,
                "source": "snapshot",
            }
            if self.store.claim_event(key, claim):
                self.publish(
                    notice_transition(
                        notice_id=f"cost/{key}",
                        source="cost",
                        name="budget-threshold",
                        severity=severity,
                        summary=summary,
                        at=now,
                        labels={"month": month, "threshold": threshold.key},
                        annotations={
                            "month_to_date": f"{snapshot.month_to_date.total:.2f}",
                            "forecast_month_end": f"{snapshot.forecast_month_end.total:.2f}",
                            "budget": f"{budget.amount:.2f}",
                        },
                        value=value,
                        threshold=float(threshold.percent),
                        metric="cost.budget.used_pct"
                        if threshold.kind == "actual"
                        else "cost.budget.forecast_pct",
                        dashboard_url=self.settings.dashboard_url,
                    )
                )
                self.store.mark_published(key)
                published["crossings"].append(key)
        for anomaly in snapshot.anomalies:
            if anomaly.date < settled_before:
                continue  # judged by the runs that restated it
            key = f"anomaly/{anomaly.date.isoformat()}/{anomaly.service}"
            skus = ", ".join(f"{m.sku} {m.expected:.2f}->{m.cost:.2f}" for m in anomaly.skus)
            claim = {
                "kind": "anomaly",
                "date": anomaly.date.isoformat(),
                "service": anomaly.service,
                "cost": anomaly.cost,
                "expected": anomaly.expected,
                "threshold": anomaly.threshold,
                "skus": [m.model_dump() for m in anomaly.skus],
                "severity": "medium",
            }
            if self.store.claim_event(key, claim):
                self.publish(
                    notice_transition(
                        notice_id=f"cost/{key}",
                        source="cost",
                        name="cost-anomaly",
                        severity="medium",
                        summary=(
                            f"{anomaly.service} cost {anomaly.cost:.2f} {snapshot.currency} on "
                            f"{anomaly.date} against {anomaly.expected:.2f} expected "
                            f"(same weekday, {anomaly.weeks} weeks)"
                        ),
                        at=now,
                        labels={"service": anomaly.service, "date": anomaly.date.isoformat()},
                        annotations={
                            "cost": f"{anomaly.cost:.2f}",
                            "expected": f"{anomaly.expected:.2f}",
                            "top_skus": skus,
                        },
                        value=anomaly.cost,
                        threshold=anomaly.threshold,
                        metric="cost.service.daily",
                        dashboard_url=self.settings.dashboard_url,
                    )
                )
                self.store.mark_published(key)
                published["anomalies"].append(key)
        return published
