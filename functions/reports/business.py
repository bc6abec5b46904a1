"""The report's cost and customer-health parts, from the documents the cost and health
capabilities keep (``documents.py``), each with its change against the period before.

Cost (dates are the period's local days; the billing export's days are the account's):
- the period's cost, against the monthly budget prorated over its days (each day is 1/n of its
  month's budget): ok at or under the savings target so prorated, warning up to the budget,
  breach above it;
- the month-end forecast of the latest snapshot in the period, graded the same way;
- cost per million requests: the period's cost over the requests panel's count (the panel the
  dashboards show, not a query of its own);
- cost by service, with each service's share and its change.

Customer health: the distribution of every customer's latest category, from the last daily health
run in the period, beside the last one in the period before.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from pydantic import BaseModel

from functions.reports.documents import CostDay, CostSnapshot, DocumentSource, HealthRun
from functions.reports.money import UNKNOWN_CURRENCY
from functions.reports.panels import Status
from functions.reports.period import Period, zone
from functions.reports.views import Figure, Table, TableRow, change_of, format_value

CATEGORIES = {
    "healthy": "Healthy",
    "at_risk": "At risk",
    "churn_risk": "Churn risk",
    "usage_unknown": "Usage unknown (some usage refused by ingestion)",
}


class Part(BaseModel):
    """What one document-backed part adds to a section."""

    figures: list[Figure] = []
    tables: list[Table] = []
    notes: list[str] = []


def local_days(period: Period, *, previous: bool = False) -> list[date]:
    """The local calendar days of the period (or of the period before it)."""
    tz = zone(period.time_zone)
    start = (period.previous_start if previous else period.start).astimezone(tz).date()
    end = (period.previous_end if previous else period.end).astimezone(tz).date()
    return [start + timedelta(days=i) for i in range((end - start).days)]


def prorated(amount: float, days: list[date]) -> float:
    """A monthly amount over some days: each day is 1/n of its own n-day month."""
    return sum(amount / calendar.monthrange(d.year, d.month)[1] for d in days)


def graded_against_budget(value: float | None, target: float, budget: float) -> Status:
    """ok within the target, warning up to the budget, breach past it."""
    if value is None or budget <= 0:
        return "no_data" if value is None else "info"
    return "ok" if value <= target else "warning" if value <= budget else "breach"


def _figure(
    ref: str,
    title: str,
    *,
    unit: str,
    target: str,
    status: Status,
    value: float | None,
    before: float | None,
    currency: str | None = None,
) -> Figure:
    change, direction = change_of(unit, value, before, "lower", currency)
    return Figure(
        ref=ref,
        title=title,
        unit=unit,
        currency=currency if unit == "usd" else None,
        target=target,
        status=status,
        value=value,
        text=format_value(value, unit, currency),
        previous=before,
        previous_text=format_value(before, unit, currency),
        change=change,
        direction=direction,
    )


def _total(days: list[CostDay]) -> float | None:
    return round(sum(d.total for d in days), 2) if days else None


def account_currency(snapshots: list[CostSnapshot | None], days: list[CostDay]) -> str | None:
    """The billing account's currency: the snapshots' (newest first), else the days' (None: no
    document says, shown by ``money.py``'s fallback)."""
    stated = [s.currency for s in snapshots if s is not None] + [d.currency for d in reversed(days)]
    return next((c for c in stated if c), None)


def _by_service(now: list[CostDay], before: list[CostDay], currency: str | None) -> Table:
    def shares(days: list[CostDay]) -> tuple[dict[str, float], float]:
        totals: dict[str, float] = {}
        for day in days:
            for name, value in day.by_service.items():
                totals[name] = totals.get(name, 0.0) + value
        return totals, sum(totals.values())

    current, current_sum = shares(now)
    previous, previous_sum = shares(before)
    rows = []
    for name, value in sorted(current.items(), key=lambda kv: -kv[1]):
        share = value / current_sum if current_sum > 0 else None
        old = previous[name] / previous_sum if name in previous and previous_sum > 0 else None
        change, _ = change_of("percent", share, old, None)
        rows.append(
            TableRow(
                label=name,
                text=format_value(value, "usd", currency),
                share=share,
                previous_share=old,
                change=change,
                status="info",
            )
        )
    return Table(
        ref="cost.by_service",
        title="Cost by service",
        unit="usd",
        currency=currency,
        rows=rows,
        note="No cost recorded.",
    )


def cost_part(
    source: DocumentSource, period: Period, *, requests: float | None, requests_before: float | None
) -> Part:
    days, days_before = local_days(period), local_days(period, previous=True)
    now, before = source.cost_days(days), source.cost_days(days_before)
    snapshot: CostSnapshot | None = source.cost_snapshot(days)
    snapshot_before = source.cost_snapshot(days_before)
    known = snapshot or snapshot_before
    total, total_before = _total(now), _total(before)
    currency = account_currency([snapshot, snapshot_before], before + now)

    def money(value: float) -> str:
        return format_value(value, "usd", currency)

    notes: list[str] = []
    figures = []
    if known is not None:
        budget, target = prorated(known.budget, days), prorated(known.target, days)
        figures.append(
            _figure(
                "cost.period_total",
                f"Cost this {period.kind}",
                unit="usd",
                currency=currency,
                target=f"<= {money(target)} (the {money(known.target)} monthly "
                f"savings target over {len(days)} days); budget {money(budget)} "
                f"({money(known.budget)} a month)",
                status=graded_against_budget(total, target, budget),
                value=total,
                before=total_before,
            )
        )
    else:
        figures.append(
            _figure(
                "cost.period_total",
                f"Cost this {period.kind}",
                unit="usd",
                currency=currency,
                target="no budget known",
                status="info",
                value=total,
                before=total_before,
            )
        )
        notes.append("No cost snapshot in either period: the budget and forecast are unknown.")
    if currency is None and (now or before):
        notes.append(
            f"No cost document names the billing currency: amounts are shown in {UNKNOWN_CURRENCY}, "
            "the cost capability's default."
        )
    if snapshot is not None:
        forecast_before = snapshot_before.forecast_month_end if snapshot_before else None
        figures.append(
            _figure(
                "cost.forecast_month_end",
                f"Month-end forecast (as of {snapshot.as_of:%b} {snapshot.as_of.day})",
                unit="usd",
                currency=currency,
                target=f"<= {money(snapshot.target)} target; budget {money(snapshot.budget)}",
                status=graded_against_budget(snapshot.forecast_month_end, snapshot.target, snapshot.budget),
                value=snapshot.forecast_month_end,
                before=forecast_before,
            )
        )
        if snapshot.fallback:
            notes.append(
                f"The cost snapshot was built from {snapshot.source or 'a local fallback'}, "
                "not the billing export: these are not billed figures."
            )

    def per_million(cost: float | None, count: float | None) -> float | None:
        return cost / count * 1e6 if cost is not None and count else None

    figures.append(
        _figure(
            "cost.per_million_requests",
            "Cost per million requests",
            unit="usd",
            currency=currency,
            target="informational (the period's cost over its routed requests)",
            status="info",
            value=per_million(total, requests),
            before=per_million(total_before, requests_before),
        )
    )
    if not now:
        notes.append(
            f"No cost recorded for {period.label}: the cost capability's daily snapshot wrote no day of "
            "it (is the cost-snapshot job running and the billing export configured?)."
        )
    elif len(now) < len(days):
        notes.append(
            f"Cost recorded for {len(now)} of {len(days)} days: the billing export lags by up to a day, "
            "and a missing day counts as nothing here."
        )
    return Part(figures=figures, tables=[_by_service(now, before, currency)], notes=notes)


def _distribution(run: HealthRun | None) -> dict[str, float]:
    if run is None or run.customers <= 0:
        return {}
    return {name: run.categories.get(name, 0) / run.customers for name in CATEGORIES}


def health_part(source: DocumentSource, period: Period) -> Part:
    run = source.health_run(local_days(period))
    run_before = source.health_run(local_days(period, previous=True))
    if run is None:
        return Part(
            notes=[
                f"No customer health run in {period.label}: the health capability's daily job recorded "
                "none (is the health-score job running, and are customers registered?)."
            ]
        )
    shares, shares_before = _distribution(run), _distribution(run_before)
    rows = []
    for name, label in CATEGORIES.items():
        count = run.categories.get(name, 0)
        if name == "usage_unknown" and not count and not (run_before and run_before.categories.get(name)):
            continue  # a row only when some customer's usage was not all stored
        change, _ = change_of("percent", shares.get(name), shares_before.get(name), None)
        rows.append(
            TableRow(
                label=label,
                text=f"{count:,} customer{'' if count == 1 else 's'}",
                share=shares.get(name),
                previous_share=shares_before.get(name),
                change=change,
                status="info",
            )
        )
    churn = float(run.categories.get("churn_risk", 0))
    churn_before = float(run_before.categories.get("churn_risk", 0)) if run_before else None
    figure = _figure(
        "health.churn_risk",
        "Customers at churn risk",
        unit="count",
        target="informational (health score below the at-risk line)",
        status="info",
        value=churn,
        before=churn_before,
    )
    table = Table(
        ref="health.distribution",
        title=(
            f"Customer health ({run.customers:,} customer{'' if run.customers == 1 else 's'}"
            f" scored {run.as_of:%b} {run.as_of.day})"
        ),
        unit="count",
        rows=rows,
    )
    return Part(figures=[figure], tables=[table])
