"""The cost snapshot of one day, computed from daily costs.

Month to date (by invoice month; tax, adjustments and rounding apart from usage), SKU groups, the
month-end forecast with its band, budget and target use against the pro-rated amounts, the daily
series, anomalies and savings against the seeds' baseline. Costs are exact sums, rounded to cents
only when shown. The daily run (``functions.cost.service``) and the CLI (``functions.cost.snapshot``)
both build it here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from functions.cost.anomalies import AnomalyParams, detect
from functions.cost.billing import TAX
from functions.cost.budget import (
    BASELINE,
    DEFAULT_THRESHOLDS,
    baseline_line,
    crossed,
    pct,
    prorated,
)
from functions.cost.forecast import ForecastParams, forecast_month
from functions.cost.ledger import (
    ZERO,
    DayCost,
    days_between,
    money,
    month_end,
    month_start,
)
from functions.cost.snapshot_models import (
    AnomalyOut,
    BudgetOut,
    DailyEntry,
    ForecastOut,
    MonthToDate,
    Savings,
    SavingsLine,
    SkuMoveOut,
    Snapshot,
)

WINDOW_DAYS = 35
DEFAULT_BUDGET = 3000.0
DEFAULT_TARGET = 1800.0
VARIANCE_FLAG_PCT = 5.0

# SKU description keywords -> group; first match wins, "Other" otherwise.
SKU_GROUPS: tuple[tuple[str, str], ...] = (
    ("request", "Requests"),
    ("cpu", "CPU"),
    ("vcpu", "CPU"),
    ("core", "CPU"),
    ("memory", "Memory"),
    ("ram", "Memory"),
    ("capacity", "Capacity"),
    ("instance", "Instances"),
    ("storage", "Storage"),
    ("backup", "Storage"),
    ("egress", "Network"),
    ("network", "Network"),
    ("load balanc", "Network"),
    ("forwarding rule", "Network"),
    ("log", "Logging"),
)


def sku_group(sku: str) -> str:
    lowered = sku.lower()
    return next((group for word, group in SKU_GROUPS if word in lowered), "Other")


@dataclass(frozen=True)
class SnapshotParams:
    budget: float = DEFAULT_BUDGET
    target: float = DEFAULT_TARGET
    window_days: int = WINDOW_DAYS
    forecast: ForecastParams = field(default_factory=ForecastParams)
    anomalies: AnomalyParams = field(default_factory=AnomalyParams)


def _shown(values: Mapping[str, Decimal | float]) -> dict[str, float]:
    return {k: money(Decimal(str(v)) if isinstance(v, float) else v) for k, v in sorted(values.items())}


def _round(value: float) -> float:
    return round(value, 2)


def _month_from_days(history: Mapping[date, DayCost], as_of: date) -> DayCost:
    """The month to date summed from the days (when no invoice-month lines are at hand)."""
    total = DayCost(month_start(as_of))
    for d in days_between(month_start(as_of), as_of):
        day = history.get(d)
        if day is None:
            continue
        total.total += day.total
        total.gross += day.gross
        total.credits += day.credits
        total.rows += day.rows
        for svc, value in day.by_service.items():
            total.by_service[svc] += value
        for region, value in day.by_region.items():
            total.by_region[region] += value
        for svc, skus in day.by_sku.items():
            for sku, value in skus.items():
                total.by_sku[svc][sku] += value
        for kind, value in day.charges.items():
            total.charges[kind] += value
    return total


def _billed_for_other_days(month: DayCost, history: Mapping[date, DayCost], as_of: date) -> dict[str, float]:
    """Usage per service the invoice month bills beyond its own usage days up to ``as_of``: a
    correction for last month's usage billed this month (or, negative, a day of this month
    billed in another invoice month). Zero when the month was summed from the days."""
    own: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for d in days_between(month_start(as_of), as_of):
        for svc, value in (history[d].by_service if d in history else {}).items():
            own[svc] += value
    out = {}
    for svc in set(month.by_service) | set(own):
        difference = month.by_service.get(svc, ZERO) - own.get(svc, ZERO)
        if difference:
            out[svc] = float(difference)
    return out


def build_snapshot(
    history: Mapping[date, DayCost],
    as_of: date,
    *,
    currency: str,
    params: SnapshotParams | None = None,
    month: DayCost | None = None,
    time_zone: str = "UTC",
) -> Snapshot:
    """The snapshot of ``as_of`` from daily costs (days after ``as_of`` are ignored). ``month`` is
    the month to date by invoice month (:func:`~functions.cost.ledger.month_cost`); without it the
    month's days are summed."""
    p = params or SnapshotParams()
    history = {d: c for d, c in history.items() if d <= as_of}
    first = month_start(as_of)
    mtd = month if month is not None else _month_from_days(history, as_of)

    usage_total = mtd.total
    tax = mtd.charges.get(TAX, ZERO)
    # Adjustments and rounding are part of what is spent (budgets count them); tax is shown apart.
    pre_tax_charges = sum((v for k, v in mtd.charges.items() if k != TAX), ZERO)
    mtd_total = usage_total + pre_tax_charges
    by_service = mtd.by_service
    by_region = mtd.by_region
    by_group: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for svc, skus in mtd.by_sku.items():
        for sku, value in skus.items():
            by_group[svc][sku_group(sku)] += value

    fc = forecast_month(history, as_of, p.forecast)
    # The forecast is of this month's usage days; what this invoice month bills for other days
    # (late rows of last month's usage) is on the invoice as it stands, as are the charges.
    carried = _billed_for_other_days(mtd, history, as_of)
    for svc, value in carried.items():
        fc.by_service[svc] = fc.by_service.get(svc, 0.0) + value
    shift = float(pre_tax_charges) + sum(carried.values())
    fc.total += shift
    fc.low += shift
    fc.high += shift
    used_pct = pct(float(mtd_total), p.budget) or 0.0
    forecast_pct = pct(fc.total, p.budget) or 0.0
    elapsed = (as_of - first).days + 1
    in_month = (month_end(as_of) - first).days + 1
    prorated_budget = prorated(p.budget, elapsed, in_month)
    variance = float(mtd_total) - prorated_budget
    variance_pct = pct(variance, prorated_budget)
    prorated_target = prorated(p.target, elapsed, in_month)
    target_variance_pct = pct(float(mtd_total) - prorated_target, prorated_target)

    window_start = as_of - timedelta(days=p.window_days - 1)
    present = [d for d in history if d >= window_start]
    daily_days = days_between(min(present), as_of) if present else []
    daily = []
    for d in daily_days:
        cost = history.get(d) or DayCost(d)
        daily.append(
            DailyEntry(
                date=d,
                total=money(cost.total),
                credits=money(cost.credits),
                by_service=_shown(cost.by_service),
                charges=_shown(cost.charges),
            )
        )

    anomalies = [
        AnomalyOut(
            date=a.date,
            service=a.service,
            cost=_round(a.cost),
            expected=_round(a.expected),
            threshold=_round(a.threshold),
            weeks=a.weeks,
            skus=[SkuMoveOut(sku=m.sku, cost=_round(m.cost), expected=_round(m.expected)) for m in a.skus],
        )
        for a in detect(history, daily_days, p.anomalies)
    ]

    line_forecast: dict[str, float] = defaultdict(float)
    for svc, value in fc.by_service.items():
        line_forecast[baseline_line(svc)] += value
    baseline_total = float(sum(BASELINE.values()))
    lines = {}
    for line, base in BASELINE.items():
        forecast_value = line_forecast.get(line, 0.0)
        lines[line] = SavingsLine(
            baseline=float(base),
            forecast=_round(forecast_value),
            saving=_round(float(base) - forecast_value),
            saving_pct=_round((float(base) - forecast_value) / float(base) * 100),
        )

    return Snapshot(
        as_of=as_of,
        currency=currency,
        time_zone=time_zone,
        month_to_date=MonthToDate(
            month=as_of.strftime("%Y-%m"),
            days=elapsed,
            total=money(mtd_total),
            usage=money(usage_total),
            charges=_shown(mtd.charges),
            tax=money(tax),
            invoice_total=money(mtd_total + tax),
            gross=money(mtd.gross),
            credits=money(mtd.credits),
            by_service=_shown(by_service),
            by_region=_shown(by_region),
            by_sku_group={svc: _shown(groups) for svc, groups in sorted(by_group.items())},
        ),
        forecast_month_end=ForecastOut(
            total=_round(fc.total),
            low=_round(fc.low),
            high=_round(fc.high),
            by_service={k: _round(v) for k, v in sorted(fc.by_service.items())},
            fixed_remaining=_round(fc.fixed_remaining),
            usage_remaining=_round(fc.usage_remaining),
            method=fc.method,
        ),
        budget=BudgetOut(
            amount=p.budget,
            used_pct=round(used_pct, 2),
            forecast_pct=round(forecast_pct, 2),
            target=p.target,
            target_used_pct=round(pct(float(mtd_total), p.target) or 0.0, 2),
            target_forecast_pct=round(pct(fc.total, p.target) or 0.0, 2),
            prorated=_round(prorated_budget),
            variance=_round(variance),
            variance_pct=None if variance_pct is None else round(variance_pct, 2),
            variance_flag=variance_pct is not None and abs(variance_pct) > VARIANCE_FLAG_PCT,
            target_prorated=_round(prorated_target),
            target_variance_pct=None if target_variance_pct is None else round(target_variance_pct, 2),
            target_variance_flag=target_variance_pct is not None
            and abs(target_variance_pct) > VARIANCE_FLAG_PCT,
            crossed=[t.key for t in crossed(used_pct, forecast_pct, DEFAULT_THRESHOLDS)],
        ),
        daily=daily,
        anomalies=anomalies,
        savings=Savings(
            baseline_total=baseline_total,
            forecast_total=_round(fc.total),
            saving=_round(baseline_total - fc.total),
            saving_pct=_round((baseline_total - fc.total) / baseline_total * 100),
            target_gap=_round(fc.total - p.target),
            by_line=lines,
        ),
        rows=mtd.rows,
    )
