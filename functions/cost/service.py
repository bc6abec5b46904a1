"""The daily cost run over its ports: billing source, store, metric store, notices.

One run for ``as_of`` (default: yesterday in the billing account's time zone, Pacific):

1. query the billing source for the last ``window_days`` (35) usage days and the as-of invoice
   month, of the configured projects, aggregated; a line that does not parse (or is in another
   currency) is set aside and reported, the rest stored; older days come from the stored daily
   documents (anomaly baselines look back up to eight weeks);
2. restate: the last ``restate_days`` (3) days are rewritten at every run, since their rows are
   still landing; an older day is rewritten only if its figures changed (a row later than that),
   and the snapshot lists it under ``late_restatements``;
3. build the snapshot (``functions.cost.snapshot_build``; month to date by invoice month, tax,
   adjustments and rounding apart from usage), add today's live estimate (stored per day, and
   checked against the billed day once it lands), the cost per request and per customer, and the
   reconciliation with the stored GCP Budget notifications of the month
   (``functions.cost.reconciliation``);
4. announce, each once: budget thresholds crossed this month and anomalies of the unsettled days
   and of settled days late rows changed (claimed in the store, published as notices on
   ``alerts``, then marked published; ``functions.cost.notices``);
5. store the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from functions.cost.anomalies import AnomalyParams
from functions.cost.billing import RowError
from functions.cost.cost_lines import CostLine, Parsed
from functions.cost.ledger import day_end, day_start, days_between, fold, month_cost, month_start
from functions.cost.notices import Announcer
from functions.cost.reconciliation import ESTIMATE_CHECK_DAYS, check_estimates, reconcile_budgets
from functions.cost.settings import CostSettings
from functions.cost.snapshot_build import SnapshotParams, build_snapshot
from functions.cost.snapshot_models import Snapshot
from functions.cost.sources import BillingSource
from functions.cost.store import CostStore, day_from_doc, day_to_doc, same_figures
from functions.cost.usage import Metrics, PriceFile, estimate_day, estimate_today, routed_requests
from shared.logging import get_logger
from shared.messages import AlertTransition

log = get_logger("cost")


REASONS_SHOWN = 5


class CurrencyMismatch(ValueError):
    pass


def screen_currency(parsed: Parsed, currency: str) -> list[CostLine]:
    """The lines in ``currency``; the others set aside as rejected. An export with no line in it
    at all is refused (CurrencyMismatch): the budgets are in another currency than the bill."""
    ours = [line for line in parsed.lines if line.currency == currency]
    others = [line for line in parsed.lines if line.currency != currency]
    if others and not ours:
        found = sorted({line.currency for line in others})
        raise CurrencyMismatch(
            f"the billing export is in {', '.join(found)} but budgets are set in {currency} "
            "(ION_COST_CURRENCY); convert the budget or set the currency"
        )
    for line in others:
        parsed.rejected.append(
            RowError(
                row=line.number,
                errors=[
                    {
                        "field": "currency",
                        "message": f"{line.currency} differs from {currency}: sums across currencies "
                        "mean nothing",
                        "type": "currency_mismatch",
                    }
                ],
            )
        )
    return ours


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
        s = self.settings
        zone = s.zone
        as_of = as_of or (now.astimezone(zone).date() - timedelta(days=1))
        params = self.params()
        first = as_of - timedelta(days=s.window_days - 1)
        month = as_of.strftime("%Y-%m")
        parsed = self.source.lines(first, as_of, month=month, zone=zone)
        lines = screen_currency(parsed, self.currency)
        rejected = self._rejected(parsed, as_of)
        queried = fold(lines, until=as_of, since=first)
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
            # The currency too, so a reader of the days alone (the reports) need not guess it.
            doc = {**day_to_doc(cost), "time_zone": zone.key, "currency": self.currency}
            old = stored.get(day)
            changed = old is None or not same_figures(old, doc)
            # Days stored before they were counted in this zone (UTC days before 2026-12) are
            # rewritten once without being reported as late rows: the day itself moved.
            rezoned = old is not None and old.get("time_zone") != zone.key
            if day >= settled_before or changed:
                revision = int((old or {}).get("revision", 0)) + (1 if changed else 0)
                self.store.put_day(
                    {**doc, "revision": revision, "restated_at": now, "settled": day < settled_before}
                )
                restated.append(day.isoformat())
                if old is not None and changed and day < settled_before and not rezoned:
                    late.append({"date": day.isoformat(), "was": old["total"], "now": doc["total"]})
                    log.warning("late billing rows restated a settled day", extra={"date": day.isoformat()})
            elif old is not None and not old.get("settled"):
                # Out of the restated days with nothing changed: settled now, figures untouched.
                self.store.put_day({**old, "settled": True})

        late = self._with_earlier_late(as_of, late)
        snapshot = build_snapshot(
            history,
            as_of,
            currency=self.currency,
            params=params,
            month=month_cost(lines, month, until=as_of),
            time_zone=zone.key,
        )
        notifications = self.store.budget_notifications()
        doc: dict[str, Any] = snapshot.model_dump(mode="json")
        doc["source"] = {
            "name": self.source.name,
            "fallback": self.source.fallback,
            "lines": len(lines),
            "rows": sum(line.rows for line in lines),
            "projects": s.project_list or None,
        }
        doc["rejected"] = rejected
        doc["restated"] = restated
        doc["late_restatements"] = late
        doc["generated_at"] = now.isoformat()
        doc.update(self._usage_figures(snapshot, as_of, now))
        estimates = self.store.estimates(as_of - timedelta(days=ESTIMATE_CHECK_DAYS - 1), as_of)
        doc["estimate_check"] = check_estimates(estimates, queried, settled_before)
        doc["budget_reconciliation"] = reconcile_budgets(
            snapshot, month, notifications, budget=s.budget, currency=self.currency
        )
        doc["opportunities"] = self._opportunities()
        announcer = Announcer(self.store, self.publish, s.dashboard_url)
        late_days = {date.fromisoformat(item["date"]) for item in late}
        doc["notices"] = announcer.announce(
            snapshot, as_of, now, settled_before, notifications, late_days=late_days
        )
        self.store.put_snapshot(as_of, doc)
        log.info(
            "cost snapshot stored",
            extra={
                "as_of": as_of.isoformat(),
                "mtd": snapshot.month_to_date.total,
                "lines": len(lines),
                "rejected": rejected["count"],
            },
        )
        return doc

    def _with_earlier_late(self, as_of: date, late: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A rerun of ``as_of`` finds the days an earlier run of it restated late unchanged since:
        they stay listed (with the figure they had before), or the rerun would erase them."""
        earlier = self.store.snapshot(as_of) or {}
        found = {item["date"]: item for item in earlier.get("late_restatements") or []}
        for item in late:
            before = found.get(item["date"])
            found[item["date"]] = {**item, "was": before["was"]} if before else item
        return [found[day] for day in sorted(found)]

    def _rejected(self, parsed: Parsed, as_of: date) -> dict[str, Any]:
        """What was set aside, for the snapshot and the log: never summed, never fatal."""
        out = {"count": len(parsed.rejected), "read": parsed.read, "reasons": parsed.reasons(REASONS_SHOWN)}
        if parsed.rejected:
            log.error(
                "billing lines set aside: not summed",
                extra={"as_of": as_of.isoformat(), "count": len(parsed.rejected), "reasons": out["reasons"]},
            )
        return out

    def _store_estimates(self, as_of: date, now: datetime) -> dict[str, Any] | None:
        """Today's estimate so far, and the as-of day's over its whole day (kept to check it
        against the billed figure when it lands). Days over 2 days old are not estimated: the
        metric store's minute rollups (Cloud SQL's up-minutes) are gone by then."""
        if self.metrics is None or self.prices is None:
            return None
        zone = self.settings.zone
        today = estimate_today(self.metrics, self.prices, now, zone)
        self.store.put_estimate({**today.model_dump(mode="json"), "stored_at": now.isoformat()})
        if now - day_end(as_of, zone) < timedelta(days=2) and as_of != today.date:
            whole = estimate_day(self.metrics, self.prices, as_of, now, zone)
            self.store.put_estimate({**whole.model_dump(mode="json"), "stored_at": now.isoformat()})
        return today.model_dump(mode="json")

    def _opportunities(self) -> dict[str, Any]:
        """Savings opportunities; a Recommender failure is reported in the snapshot, not fatal."""
        if self.opportunities is None:
            return {"items": None, "total_monthly_saving": None, "note": "Recommender API not configured"}
        try:
            return self.opportunities().model_dump(mode="json")
        except Exception as exc:  # noqa: BLE001 - the snapshot stands without them; said in it
            log.warning("recommender API failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return {"items": None, "total_monthly_saving": None, "note": f"Recommender API failed: {exc}"}

    def _usage_figures(self, snapshot: Snapshot, as_of: date, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.metrics is None:
            note = "no metric store configured"
            out["today"] = None
            out["per_request"] = {"cost_per_request": None, "requests": None, "note": note}
            out["per_customer"] = {"customers": None, "note": note}
            return out
        out["today"] = self._store_estimates(as_of, now) if self.prices else None
        zone = self.settings.zone
        start = day_start(month_start(as_of), zone)
        end = day_end(as_of, zone)
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
            # Customer-key requests are routed requests; when the request histogram counts fewer
            # (its rollups behind the counter's, or routing's duration metric missing), the
            # month's cost is shared over what the customer counter saw rather than divided by 0.
            base = max(counts.total, attributed)
            unattributed = base - attributed
            out["per_customer"] = {
                "customers": {
                    name: {"requests": n, "share": n / base, "cost": round(mtd * n / base, 2)}
                    for name, n in sorted(counts.by_customer.items())
                },
                "unattributed_requests": unattributed,
                "unattributed_cost": round(mtd * unattributed / base, 2),
                "attributed_share": attributed / base,
                "note": None
                if counts.total >= attributed
                else f"routed requests ({counts.total:.0f}) count fewer than customer-key requests "
                f"({attributed:.0f}) this month: shares are of the customer-key requests",
            }
        return out
