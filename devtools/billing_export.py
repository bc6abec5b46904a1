"""Generated Cloud Billing export rows, shaped like the standard usage cost table, for the BigQuery
stand-in of `make run`, the tests and `bench/cost.py`.

ION's services at roughly the seeds' baseline ($2,460 a month): Cloud Run (usage, with a weekday
pattern, in three regions), Cloud SQL and Memorystore (always-on instances: a fixed daily cost),
logging and egress (usage), in the serving project. Rows cover ``hours`` hours each, counted from
midnight in the billing account's time zone (Pacific: a DST day is 23 or 25 hours, its last row
shorter or an extra one, costs by the hour); ``invoice.month`` is that zone's month. Every row has
an ``export_time`` (when it lands in the export: hours later, sometimes days) so a run "as of" a
moment sees only what had landed. Credits: the Cloud Run free tier on requests and a committed-use
discount on Cloud SQL, some of them landing as separate late rows. Spikes (one service, one day,
x factor) and creeps (a service growing by a share a day over a span) can be injected; the truth
of what was injected is returned beside the rows.

What a real billing account adds, each on request: ``others`` - ION Ops' own project (Cloud Run
functions, Firestore, BigQuery: ION's cost too) and another team's project on the same account
(not ION's: a query without a project filter sums it); ``charges`` - cost types other than usage:
a tax row per project and day, an adjustment on the 15th crediting the previous month's usage
(billed in this invoice month), a rounding error on each month's last day; ``malformed_on`` - a
row per given day that no parser should accept (no service description).
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REGIONS = ("us-central1", "europe-west1", "asia-southeast1")
REGION_SHARE = {"us-central1": 0.55, "europe-west1": 0.28, "asia-southeast1": 0.17}
WEEKDAY = (1.0, 1.02, 1.03, 1.01, 0.96, 0.7, 0.64)
BILLING_ZONE = "America/Los_Angeles"
SERVING_PROJECT = "ion-mentoring-prod"
OPS_PROJECT = "ion-ops-prod"
OTHER_PROJECT = "acme-analytics-prod"  # another team's project on the same billing account
ION_PROJECTS = (SERVING_PROJECT, OPS_PROJECT)
TAX_RATE = Decimal("0.0825")


@dataclass(frozen=True)
class Sku:
    service: str
    service_id: str
    sku: str
    daily: float  # dollars a day across regions, on an average weekday
    fixed: bool
    regional: bool = True
    project: str = SERVING_PROJECT


SKUS: tuple[Sku, ...] = (
    Sku("Cloud Run", "152E-C115-5142", "CPU Allocation Time (tier 1)", 22.0, False),
    Sku("Cloud Run", "152E-C115-5142", "Memory Allocation Time (tier 1)", 11.0, False),
    Sku("Cloud Run", "152E-C115-5142", "Requests (tier 1)", 7.0, False),
    Sku(
        "Cloud SQL",
        "9662-B51E-5089",
        "Cloud SQL for PostgreSQL: Regional - vCPU in Americas",
        19.0,
        True,
        False,
    ),
    Sku(
        "Cloud SQL",
        "9662-B51E-5089",
        "Cloud SQL for PostgreSQL: Regional - RAM in Americas",
        6.5,
        True,
        False,
    ),
    Sku(
        "Cloud SQL",
        "9662-B51E-5089",
        "Cloud SQL for PostgreSQL: Regional - Standard storage",
        1.2,
        True,
        False,
    ),
    Sku("Cloud Memorystore for Redis", "5AF5-2C11-D467", "Redis Capacity Standard M1", 10.0, True),
    Sku("Cloud Logging", "5490-F7B7-8DF6", "Log Volume", 2.9, False, False),
    Sku("Networking", "E505-1604-58F8", "Network Internet Egress from Americas to APAC", 2.4, False, False),
)

# With ``others``: ION Ops' own project (ION's cost) and another team's (not ION's, and larger).
OTHER_SKUS: tuple[Sku, ...] = (
    Sku("Cloud Run Functions", "29E7-DA93-CA13", "CPU Time", 1.4, False, False, OPS_PROJECT),
    Sku("Cloud Firestore", "EE2C-7FAC-5E08", "Cloud Firestore Read Ops", 0.6, False, False, OPS_PROJECT),
    Sku("BigQuery", "24E6-581D-38E5", "Analysis", 0.15, False, False, OPS_PROJECT),
    Sku("BigQuery", "24E6-581D-38E5", "Analysis", 55.0, False, False, OTHER_PROJECT),
    Sku(
        "Compute Engine",
        "6F81-5844-456A",
        "N2 Instance Core running in Americas",
        38.0,
        True,
        False,
        OTHER_PROJECT,
    ),
)


@dataclass
class Spike:
    day: date
    service: str
    factor: float = 3.0


@dataclass
class Creep:
    start: date
    days: int
    service: str
    per_day: float = 0.03  # growth of the service's usage per day, compounding


@dataclass
class Generated:
    rows: list[dict[str, Any]]
    spikes: list[Spike] = field(default_factory=list)
    creeps: list[Creep] = field(default_factory=list)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def _lag(rng: random.Random, late_share: float) -> timedelta:
    """How long after its usage ends a row lands: hours usually, days for ``late_share`` of rows."""
    if rng.random() < late_share:
        return timedelta(hours=rng.uniform(24, 96))
    return timedelta(hours=rng.uniform(2, 14))


def _blocks(day: date, hours: int, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """``hours``-long spans from ``day``'s midnight in ``zone`` to the next, in UTC (a DST day's
    last span is shorter, or one more span is added)."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    out = []
    while start < end:
        out.append((start, min(start + timedelta(hours=hours), end)))
        start = out[-1][1]
    return out


def generate(
    first: date,
    last: date,
    *,
    seed: int = 7,
    hours: int = 6,
    noise: float = 0.05,
    late_share: float = 0.05,
    spikes: Iterable[Spike] = (),
    creeps: Iterable[Creep] = (),
    scale: float = 1.0,
    currency: str = "USD",
    time_zone: str = BILLING_ZONE,
    others: bool = False,
    charges: bool = False,
    malformed_on: Iterable[date] = (),
) -> Generated:
    """Rows for the days ``first``..``last`` (in ``time_zone``), ``hours`` hours per row."""
    if 24 % hours:
        raise ValueError("hours must divide 24")
    zone = ZoneInfo(time_zone)
    rng = random.Random(seed)
    spikes = list(spikes)
    creeps = list(creeps)
    spike_at = {(s.day, s.service): s.factor for s in spikes}
    skus = SKUS + (OTHER_SKUS if others else ())
    rows: list[dict[str, Any]] = []
    day = first
    while day <= last:
        weekday = WEEKDAY[day.weekday()]
        blocks = _blocks(day, hours, zone)
        day_cost: dict[str, Decimal] = {}
        for sku in skus:
            day_noise = 1.0 if sku.fixed else math.exp(rng.gauss(0.0, noise))
            factor = spike_at.get((day, sku.service), 1.0)
            for creep in creeps:
                if creep.service == sku.service and not sku.fixed and day >= creep.start:
                    grown = min((day - creep.start).days + 1, creep.days)
                    factor *= (1 + creep.per_day) ** grown
            level = 1.0 if sku.fixed else weekday
            daily = sku.daily * scale * level * day_noise * factor
            regions = REGIONS if sku.regional else ("us-central1",)
            for region in regions:
                share = REGION_SHARE[region] if sku.regional else 1.0
                for start, end in blocks:
                    # By the hour: a 25-hour day costs 25 hours.
                    cost = daily * share * (end - start).total_seconds() / 86400
                    credits = []
                    late_credit = None
                    if sku.sku.startswith("Requests"):
                        credits.append(
                            {"name": "Free tier", "amount": _money(-min(cost, 0.1)), "type": "FREE_TIER"}
                        )
                    if sku.service == "Cloud SQL":
                        discount = {
                            "name": "Committed use discount",
                            "amount": _money(-cost * 0.1),
                            "type": "COMMITTED_USAGE_DISCOUNT",
                        }
                        if rng.random() < 0.3:
                            late_credit = discount  # lands later, as its own row
                        else:
                            credits.append(discount)
                    export = end + _lag(rng, late_share)
                    rows.append(_row(sku, region, start, end, _money(cost), credits, export, currency, zone))
                    day_cost[sku.project] = day_cost.get(sku.project, Decimal(0)) + _money(cost)
                    if late_credit is not None:
                        rows.append(
                            _row(
                                sku,
                                region,
                                start,
                                end,
                                Decimal("0"),
                                [late_credit],
                                export + timedelta(hours=rng.uniform(12, 60)),
                                currency,
                                zone,
                            )
                        )
        day_start, day_end = blocks[0][0], blocks[-1][1]
        if charges:
            rows.extend(
                _charges(day, start=day_start, end=day_end, day_cost=day_cost, currency=currency, zone=zone)
            )
        if day in set(malformed_on):
            bad = _row(
                SKUS[0], "us-central1", day_start, blocks[0][1], Decimal("1.25"), [], day_end, currency, zone
            )
            bad["service"] = {"id": SKUS[0].service_id, "description": None}
            rows.append(bad)
        day += timedelta(days=1)
    return Generated(rows, spikes, creeps)


def _charge(
    cost_type: str,
    service: str,
    sku: str,
    *,
    project: str,
    start: datetime,
    end: datetime,
    cost: Decimal,
    currency: str,
    zone: ZoneInfo,
    invoice_month: str | None = None,
) -> dict[str, Any]:
    row = _row(Sku(service, "0000-0000-0000", sku, 0.0, True, False, project), "global", start, end, cost, [],
               end + timedelta(hours=6), currency, zone)  # fmt: skip
    row["cost_type"] = cost_type
    row["location"] = None
    if invoice_month:
        row["invoice"] = {"month": invoice_month}
    return row


def _charges(
    day: date, *, start: datetime, end: datetime, day_cost: dict[str, Decimal], currency: str, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Tax per project and day; an adjustment on the 15th for last month's usage, billed in this
    month; a rounding error on the month's last day."""
    out = [
        _charge(
            "tax",
            "Tax",
            "Sales tax",
            project=project,
            start=start,
            end=end,
            cost=_money(float(cost * TAX_RATE)),
            currency=currency,
            zone=zone,
        )
        for project, cost in sorted(day_cost.items())
    ]
    if day.day == 15:
        previous = (day.replace(day=1) - timedelta(days=1)).replace(day=20)
        used = datetime.combine(previous, time(12), tzinfo=zone).astimezone(UTC)
        out.append(
            _charge("adjustment", "Cloud Run", "CPU Allocation Time (tier 1)", project=SERVING_PROJECT,
                    start=used, end=used + timedelta(hours=1), cost=Decimal("-5.000000"), currency=currency,
                    zone=zone, invoice_month=day.strftime("%Y%m"))
        )  # fmt: skip
        out[-1]["export_time"] = _ts(end + timedelta(hours=6))  # exported with the day it is billed
    if (day + timedelta(days=1)).day == 1:
        out.append(
            _charge("rounding error", "Invoice", "Rounding error", project=SERVING_PROJECT, start=start,
                    end=end, cost=Decimal("0.004000"), currency=currency, zone=zone)
        )  # fmt: skip
    return out


def _row(  # noqa: PLR0917 - one export row's columns
    sku: Sku,
    region: str,
    start: datetime,
    end: datetime,
    cost: Decimal,
    credits: list[dict[str, Any]],
    export: datetime,
    currency: str,
    zone: ZoneInfo,
) -> dict[str, Any]:
    return {
        "billing_account_id": "0A1B2C-3D4E5F-6A7B8C",
        "service": {"id": sku.service_id, "description": sku.service},
        "sku": {"id": f"{zlib.crc32(sku.sku.encode()):012d}", "description": sku.sku},
        "usage_start_time": _ts(start),
        "usage_end_time": _ts(end),
        "project": {"id": sku.project, "name": sku.project},
        "labels": [{"key": "app", "value": "ion"}],
        "location": {"location": region, "country": "US", "region": region, "zone": None},
        "export_time": _ts(export),
        "cost": cost,
        "currency": currency,
        "currency_conversion_rate": Decimal(1),
        "usage": {"amount": 1.0, "unit": "seconds"},
        "credits": credits,
        # The invoice month is the billing account's (Pacific) month of the usage.
        "invoice": {"month": start.astimezone(zone).strftime("%Y%m")},
        "cost_type": "regular",
    }


def landed_by(rows: Iterable[dict[str, Any]], moment: datetime) -> list[dict[str, Any]]:
    """The rows in the export at ``moment``."""
    stamp = _ts(moment)
    return [r for r in rows if r["export_time"] <= stamp]


def dumps_row(row: dict[str, Any]) -> str:
    return json.dumps(_plain(row))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Six decimals at most: the float's shortest repr is the same digits, read back exactly.
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(dumps_row(row) + "\n")
    return path
