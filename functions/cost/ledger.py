"""Cost lines folded into per-day net costs: by service, by SKU (within its service) and by region.

Every figure is an exact :class:`~decimal.Decimal` sum of net costs (cost + credits); rounding to
cents happens only when a figure is shown. A day is the usage day in the billing account's time
zone (the query's ``DATE(usage_start_time, @tz)``): GCP invoices and Budgets count days and months
in Pacific time, so a UTC day would put the evening of the last day of a month into the next.

Only ``regular`` lines (usage) go into a day's total and its services; tax, adjustments and
rounding are kept apart in ``charges`` (by cost type), so they reach the month's total but never
a service's daily figure, where an anomaly or a forecast would mistake them for usage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal

from functions.cost.billing import REGULAR
from functions.cost.cost_lines import CostLine

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
    # Before credits, per service: what usage x list price estimates (checked against it).
    gross_by_service: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    # Net of non-usage cost types (tax, adjustment, rounding error), apart from the usage above.
    charges: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))

    def add(self, line: CostLine) -> None:
        net = line.net_cost
        self.rows += line.rows
        if line.cost_type != REGULAR:
            self.charges[line.cost_type] += net
            return
        self.total += net
        self.gross += line.cost
        self.credits += line.credits
        self.by_service[line.service] += net
        self.by_sku[line.service][line.sku] += net
        self.by_region[line.region] += net
        self.gross_by_service[line.service] += line.cost

    def service(self, name: str) -> Decimal:
        return self.by_service.get(name, ZERO)


def day_start(day: date, zone: tzinfo = UTC) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC (DST-aware: a day is 23 to 25 hours)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_end(day: date, zone: tzinfo = UTC) -> datetime:
    """The first instant after ``day`` in ``zone``, in UTC."""
    return day_start(day + timedelta(days=1), zone)


def fold(lines: Iterable[CostLine], *, until: date, since: date | None = None) -> dict[date, DayCost]:
    """Net cost per usage day for lines of days up to ``until`` (and from ``since`` when given),
    keyed by day in date order; days without lines are absent."""
    days: dict[date, DayCost] = {}
    for line in lines:
        day = line.usage_day
        if day > until or (since is not None and day < since):
            continue
        bucket = days.get(day)
        if bucket is None:
            bucket = days[day] = DayCost(day)
        bucket.add(line)
    return dict(sorted(days.items()))


def month_cost(lines: Iterable[CostLine], month: str, *, until: date) -> DayCost:
    """The month to date by invoice month (``YYYY-MM``), as the invoice counts it: every line
    billed in that month with usage up to ``until``, a correction of an earlier month's usage
    included. Keyed on the month's first day."""
    total = DayCost(date.fromisoformat(f"{month}-01"))
    for line in lines:
        if line.month == month and line.usage_day <= until:
            total.add(line)
    return total


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
