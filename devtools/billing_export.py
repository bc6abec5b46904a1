"""Generated Cloud Billing export rows, shaped like the standard usage cost table, for the BigQuery
stand-in of `make run`, the tests and `bench/cost.py`.

ION's services at roughly the seeds' baseline ($2,460 a month): Cloud Run (usage, with a weekday
pattern, in three regions), Cloud SQL and Memorystore (always-on instances: a fixed daily cost),
logging and egress (usage). Rows cover ``hours`` hours each; every row has an ``export_time``
(when it lands in the export: hours later, sometimes days) so a run "as of" a moment sees only
what had landed. Credits: the Cloud Run free tier on requests and a committed-use discount on
Cloud SQL, some of them landing as separate late rows. Spikes (one service, one day, x factor)
and creeps (a service growing by a share a day over a span) can be injected; the truth of what
was injected is returned beside the rows.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REGIONS = ("us-central1", "europe-west1", "asia-southeast1")
REGION_SHARE = {"us-central1": 0.55, "europe-west1": 0.28, "asia-southeast1": 0.17}
WEEKDAY = (1.0, 1.02, 1.03, 1.01, 0.96, 0.7, 0.64)


@dataclass(frozen=True)
class Sku:
    service: str
    service_id: str
    sku: str
    daily: float  # dollars a day across regions, on an average weekday
    fixed: bool
    regional: bool = True


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
) -> Generated:
    """Rows for the days ``first``..``last`` (UTC), ``hours`` hours per row."""
    if 24 % hours:
        raise ValueError("hours must divide 24")
    rng = random.Random(seed)
    spikes = list(spikes)
    creeps = list(creeps)
    spike_at = {(s.day, s.service): s.factor for s in spikes}
    rows: list[dict[str, Any]] = []
    day = first
    while day <= last:
        weekday = WEEKDAY[day.weekday()]
        for sku in SKUS:
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
                for block in range(24 // hours):
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                        hours=block * hours
                    )
                    end = start + timedelta(hours=hours)
                    cost = daily * share * hours / 24
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
                    rows.append(_row(sku, region, start, end, _money(cost), credits, export, currency))
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
                            )
                        )
        day += timedelta(days=1)
    return Generated(rows, spikes, creeps)


def _row(  # noqa: PLR0917 - one export row's columns
    sku: Sku,
    region: str,
    start: datetime,
    end: datetime,
    cost: Decimal,
    credits: list[dict[str, Any]],
    export: datetime,
    currency: str,
) -> dict[str, Any]:
    return {
        "billing_account_id": "0A1B2C-3D4E5F-6A7B8C",
        "service": {"id": sku.service_id, "description": sku.service},
        "sku": {"id": f"{zlib.crc32(sku.sku.encode()):012d}", "description": sku.sku},
        "usage_start_time": _ts(start),
        "usage_end_time": _ts(end),
        "project": {"id": "ion-mentoring-prod", "name": "ION Mentoring"},
        "labels": [{"key": "app", "value": "ion"}],
        "location": {"location": region, "country": "US", "region": region, "zone": None},
        "export_time": _ts(export),
        "cost": cost,
        "currency": currency,
        "currency_conversion_rate": Decimal(1),
        "usage": {"amount": 1.0, "unit": "seconds"},
        "credits": credits,
        "invoice": {"month": start.strftime("%Y%m")},
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
