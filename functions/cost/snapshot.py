"""The cost snapshot of one day, and its CLI over a billing-export file.

    python -m functions.cost.snapshot --billing FILE --as-of YYYY-MM-DD [--budget USD]

reads the Cloud Billing export as JSON lines (column names and nesting as in the export) and
prints the snapshot the ``snapshot_cost`` function stores for that day. Costs are net of credits
and exact sums; they are rounded to cents only when shown. Days are usage days in the billing
account's time zone (``--time-zone``, default America/Los_Angeles as invoices and Budgets count);
only rows with usage starting before the end of the as-of day count. The month to date is by
``invoice.month``; tax, adjustments and rounding (``cost_type``) are reported apart from usage. A
file with a bad row exits with status 2 naming each one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from functions.cost.anomalies import AnomalyParams, detect
from functions.cost.billing import TAX, BadRows, BillingRow, load_jsonl
from functions.cost.budget import (
    BASELINE,
    DEFAULT_THRESHOLDS,
    baseline_line,
    crossed,
    pct,
    prorated,
)
from functions.cost.cost_lines import aggregate
from functions.cost.forecast import ForecastParams, forecast_month
from functions.cost.ledger import (
    ZERO,
    DayCost,
    days_between,
    fold,
    money,
    month_cost,
    month_end,
    month_start,
)

WINDOW_DAYS = 35
DEFAULT_TIME_ZONE = "America/Los_Angeles"
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


class DailyEntry(BaseModel):
    date: date
    total: float = Field(description="usage (cost type regular), net of credits")
    credits: float
    by_service: dict[str, float]
    charges: dict[str, float] = Field(
        default_factory=dict, description="tax, adjustment, rounding error: apart from usage"
    )


class MonthToDate(BaseModel):
    month: str
    days: int
    total: float = Field(description="usage + adjustments + rounding, before tax: what budgets count")
    usage: float = Field(description="cost type regular, net of credits: the sum of by_service")
    charges: dict[str, float] = Field(
        default_factory=dict, description="net per non-usage cost type (tax, adjustment, rounding error)"
    )
    tax: float = 0.0
    invoice_total: float = Field(description="total + tax")
    gross: float
    credits: float
    by_service: dict[str, float]
    by_region: dict[str, float]
    by_sku_group: dict[str, dict[str, float]]


class ForecastOut(BaseModel):
    total: float
    low: float
    high: float
    by_service: dict[str, float]
    fixed_remaining: float
    usage_remaining: float
    method: str


class BudgetOut(BaseModel):
    amount: float
    used_pct: float
    forecast_pct: float
    target: float
    target_used_pct: float
    target_forecast_pct: float
    prorated: float
    variance: float
    variance_pct: float | None
    variance_flag: bool
    target_prorated: float
    target_variance_pct: float | None
    target_variance_flag: bool
    crossed: list[str]


class SkuMoveOut(BaseModel):
    sku: str
    cost: float
    expected: float


class AnomalyOut(BaseModel):
    date: date
    service: str
    cost: float
    expected: float
    threshold: float
    weeks: int
    skus: list[SkuMoveOut]


class SavingsLine(BaseModel):
    baseline: float
    forecast: float
    saving: float
    saving_pct: float


class Savings(BaseModel):
    baseline_total: float
    forecast_total: float
    saving: float
    saving_pct: float
    target_gap: float = Field(
        description="forecast minus target: what is still to save (negative: below target)"
    )
    by_line: dict[str, SavingsLine]


class Snapshot(BaseModel):
    as_of: date
    currency: str
    time_zone: str = Field(default="UTC", description="the zone of every day and month here")
    month_to_date: MonthToDate
    forecast_month_end: ForecastOut
    budget: BudgetOut
    daily: list[DailyEntry]
    anomalies: list[AnomalyOut]
    savings: Savings
    rows: int


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
    # The forecast is of usage; charges already billed this month are added as they stand.
    shift = float(pre_tax_charges)
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


def snapshot_from_rows(
    rows: list[BillingRow],
    as_of: date,
    params: SnapshotParams | None = None,
    *,
    currency: str = "USD",
    time_zone: str = DEFAULT_TIME_ZONE,
) -> Snapshot:
    p = params or SnapshotParams()
    lines = aggregate(rows, ZoneInfo(time_zone))
    # Baselines look back up to 8 weeks before the oldest day shown; the forecast 4.
    since = as_of - timedelta(days=p.window_days + 7 * p.anomalies.max_weeks)
    history = fold(lines, until=as_of, since=since)
    month = month_cost(lines, as_of.strftime("%Y-%m"), until=as_of)
    return build_snapshot(
        history,
        as_of,
        currency=rows[0].currency if rows else currency,
        params=p,
        month=month,
        time_zone=time_zone,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.cost.snapshot",
        description="Print the cost snapshot of one day from a Cloud Billing export (JSON lines).",
    )
    parser.add_argument("--billing", required=True, help="billing export rows, one JSON object per line")
    parser.add_argument(
        "--as-of", required=True, type=date.fromisoformat, help="YYYY-MM-DD (a day in --time-zone)"
    )
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="monthly budget (default 3000)")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET, help="monthly target (default 1800)")
    parser.add_argument(
        "--time-zone",
        default=DEFAULT_TIME_ZONE,
        help=f"the billing account's time zone, of days and months (default {DEFAULT_TIME_ZONE})",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.budget <= 0 or args.target <= 0:
        print("--budget and --target must be positive amounts", file=sys.stderr)
        return 2
    try:
        ZoneInfo(args.time_zone)
    except (KeyError, ValueError):
        print(f"--time-zone {args.time_zone!r} is not an IANA time zone", file=sys.stderr)
        return 2
    try:
        rows = load_jsonl(args.billing)
    except OSError as exc:
        print(f"cannot read {args.billing}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except BadRows as exc:
        print(str(exc), file=sys.stderr)
        return 2
    snapshot = snapshot_from_rows(
        rows, args.as_of, SnapshotParams(budget=args.budget, target=args.target), time_zone=args.time_zone
    )
    sys.stdout.write(json.dumps(snapshot.model_dump(mode="json"), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
