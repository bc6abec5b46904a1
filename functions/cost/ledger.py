"""Billing rows folded into per-day net costs: by service, by SKU (within its service) and by region.

Every figure is an exact :class:`~decimal.Decimal` sum of net costs (cost + credits); rounding to
cents happens only when a figure is shown. A day is the UTC date of ``usage_start_time`` (the
export's own partitioning column).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from functions.cost.billing import BillingRow

ZERO = Decimal(0)
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """Round half to even to the cent (what invoices do), for display only."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def money(value: Decimal) -> float:
    """A shown amount: rounded to the cent, as a JSON number."""
    return float(cents(value))


@dataclass
class DayCost:
    day: date
    total: Decimal = ZERO
    gross: Decimal = ZERO
    credits: Decimal = ZERO
    rows: int = 0
    by_service: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    by_sku: dict[str, dict[str, Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: ZERO))
    )
    by_region: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))

    def add(self, row: BillingRow) -> None:
        net = row.net_cost
        self.total += net
        self.gross += row.cost
        self.credits += row.credit_total
        self.rows += 1
        self.by_service[row.service.description] += net
        self.by_sku[row.service.description][row.sku.description] += net
        self.by_region[row.region] += net

    def service(self, name: str) -> Decimal:
        return self.by_service.get(name, ZERO)


def day_end(day: date) -> datetime:
    """The first instant after ``day`` (UTC)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def fold(rows: Iterable[BillingRow], *, until: date, since: date | None = None) -> dict[date, DayCost]:
    """Net cost per day for rows whose usage starts before the end of ``until`` (and on or after
    ``since`` when given), keyed by day in date order; days without rows are absent."""
    end = day_end(until)
    days: dict[date, DayCost] = {}
    for row in rows:
        if row.usage_start_time >= end:
            continue
        day = row.usage_date
        if since is not None and day < since:
            continue
        bucket = days.get(day)
        if bucket is None:
            bucket = days[day] = DayCost(day)
        bucket.add(row)
    return dict(sorted(days.items()))


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
