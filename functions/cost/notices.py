"""What the daily cost run announces, each once: budget thresholds crossed this month and
anomalies of the days the run judged anew (the unsettled days, and a settled day late rows
changed: its spike is news the day its rows land).

Each is claimed in the store (``cost_events``), published as a notice on ``alerts``, then marked
published: a run whose publish fails leaves it for the next run, and the notice id is stable, so
fan-out's exactly-once records hold even then.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from functions.cost.budget import (
    CONFIGURED_BUDGET,
    DEFAULT_THRESHOLDS,
    crossed,
    crossing_key,
    crossing_severity,
    legacy_crossing_key,
)
from functions.cost.budget_notifications import same_budget
from functions.cost.snapshot_models import Snapshot
from functions.cost.store import CostStore
from shared.messages import AlertTransition
from shared.notices import notice_transition


@dataclass(frozen=True)
class Announcer:
    store: CostStore
    publish: Callable[[AlertTransition], Any]
    dashboard_url: str | None = None

    def announce(
        self,
        snapshot: Snapshot,
        as_of: date,
        now: datetime,
        settled_before: date,
        notifications: list[dict[str, Any]],
        *,
        late_days: Collection[date] = (),
    ) -> dict[str, list[str]]:
        """The keys of what this run published, crossings first. ``late_days``: settled days
        whose figures late rows changed in this run."""
        crossings = self.crossings(snapshot, as_of, now, notifications)
        anomalies = self.anomalies(snapshot, now, settled_before, late_days=late_days)
        return {"crossings": crossings, "anomalies": anomalies}

    def crossings(
        self, snapshot: Snapshot, as_of: date, now: datetime, notifications: list[dict[str, Any]]
    ) -> list[str]:
        published: list[str] = []
        month = as_of.strftime("%Y-%m")
        budget = snapshot.budget
        # The GCP budget of the same amount (made by Terraform from the same variables) is this
        # budget: announce under its id, so whichever of it and this run sees a crossing first
        # announces it, once.
        ours = same_budget(notifications, month, budget.amount, snapshot.currency)
        budget_id = ours["budget_id"] if ours else CONFIGURED_BUDGET
        for threshold in crossed(budget.used_pct, budget.forecast_pct, DEFAULT_THRESHOLDS):
            key = crossing_key(month, budget_id, threshold.key)
            # Announced already: before keys had a budget id (migration), or by this run's
            # budget under the other of its two names.
            earlier = {
                legacy_crossing_key(month, threshold.key),
                crossing_key(month, CONFIGURED_BUDGET, threshold.key),
            } - {key}
            if any(self.store.published_event(k) for k in earlier):
                continue
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
                "budget_id": budget_id,
                # What a budget notification compares to know it speaks of this same budget.
                "budget_amount": str(budget.amount),
                "currency": snapshot.currency,
                "value_pct": value,
                "severity": severity,
                "source": "snapshot",
            }
            notice = notice_transition(
                notice_id=f"cost/{key}",
                source="cost",
                name="budget-threshold",
                severity=severity,
                summary=summary,
                at=now,
                labels={"month": month, "threshold": threshold.key, "budget_id": budget_id},
                annotations={
                    "month_to_date": f"{snapshot.month_to_date.total:.2f}",
                    "forecast_month_end": f"{snapshot.forecast_month_end.total:.2f}",
                    "budget": f"{budget.amount:.2f}",
                },
                value=value,
                threshold=float(threshold.percent),
                metric="cost.budget.used_pct" if threshold.kind == "actual" else "cost.budget.forecast_pct",
                dashboard_url=self.dashboard_url,
            )
            if self._publish_once(key, claim, notice):
                published.append(key)
        return published

    def anomalies(
        self, snapshot: Snapshot, now: datetime, settled_before: date, *, late_days: Collection[date] = ()
    ) -> list[str]:
        published: list[str] = []
        older = [a.date for a in snapshot.anomalies if a.date < settled_before and a.date not in late_days]
        # Claimed by a run whose publish failed: a late day is not late again in the next run.
        pending = (
            {
                (event["date"], event.get("service"))
                for event in self.store.events("anomaly", min(older))
                if not event.get("published")
            }
            if older
            else set()
        )
        for anomaly in snapshot.anomalies:
            judged = anomaly.date >= settled_before or anomaly.date in late_days
            if not judged and (anomaly.date.isoformat(), anomaly.service) not in pending:
                continue  # judged by the runs that restated it, unchanged since
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
            notice = notice_transition(
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
                dashboard_url=self.dashboard_url,
            )
            if self._publish_once(key, claim, notice):
                published.append(key)
        return published

    def _publish_once(self, key: str, claim: dict[str, Any], notice: AlertTransition) -> bool:
        """Claim ``key``, publish, then mark it published: whether this run published it."""
        if not self.store.claim_event(key, claim):
            return False
        self.publish(notice)
        self.store.mark_published(key)
        return True
