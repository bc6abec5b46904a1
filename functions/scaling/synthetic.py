"""Generated per-minute request traces for the bench and the tests: daily and weekly seasonality,
a slow trend, sudden bursts, a multi-hour outage and gaps, with count noise. Deterministic per seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class TraceSpec:
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    days: int = 42
    zone: str = "UTC"
    night_rpm: float = 300.0
    day_rpm: float = 3000.0
    weekend_factor: float = 0.55
    trend_per_day: float = 0.006
    noise: float = 0.06  # extra relative noise beyond counting noise
    bursts_per_week: float = 3.0
    burst_factor: tuple[float, float] = (1.8, 3.5)
    burst_minutes: tuple[int, int] = (5, 40)
    outage: tuple[float, float] | None = (30.4, 4.0)  # (start day, hours)
    gap_share: float = 0.01  # rows missing at random
    long_gaps: list[tuple[float, float]] = field(default_factory=lambda: [(24.6, 6.0)])  # (day, hours)
    seed: int = 7


def _shape(local: datetime) -> float:
    """0..1 daily profile: a day plateau with morning, lunch and evening peaks."""
    hour = local.hour + local.minute / 60
    day = 1 / (1 + math.exp(-(hour - 7.0) * 1.6)) * 1 / (1 + math.exp((hour - 22.0) * 1.2))
    peaks = (
        0.35 * math.exp(-(((hour - 8.6) / 0.7) ** 2))
        + 0.30 * math.exp(-(((hour - 12.5) / 0.6) ** 2))
        + 0.25 * math.exp(-(((hour - 17.6) / 0.8) ** 2))
    )
    return min(1.0, 0.7 * day + peaks)


def generate(spec: TraceSpec) -> tuple[list[datetime], list[float]]:
    rng = random.Random(spec.seed)
    zone = ZoneInfo(spec.zone)
    total = spec.days * 1440
    bursts: list[tuple[int, int, float]] = []
    for _ in range(int(spec.bursts_per_week * spec.days / 7)):
        begin = rng.randrange(total)
        bursts.append((begin, begin + rng.randint(*spec.burst_minutes), rng.uniform(*spec.burst_factor)))
    missing: set[int] = set()
    for day, hours in spec.long_gaps:
        begin = int(day * 1440)
        missing.update(range(begin, begin + int(hours * 60)))
    outage = range(0)
    if spec.outage:
        begin = int(spec.outage[0] * 1440)
        outage = range(begin, begin + int(spec.outage[1] * 60))
    minutes: list[datetime] = []
    requests: list[float] = []
    for index in range(total):
        at = spec.start + index * MINUTE
        if index in missing or rng.random() < spec.gap_share:
            continue
        local = at.astimezone(zone)
        weekly = spec.weekend_factor if local.weekday() >= 5 else 1.0
        trend = 1 + spec.trend_per_day * index / 1440
        mean = (spec.night_rpm + (spec.day_rpm - spec.night_rpm) * _shape(local) * weekly) * trend
        for begin, end, factor in bursts:
            if begin <= index < end:
                mean *= factor
        mean *= math.exp(rng.gauss(0, spec.noise))
        value = 0.0 if index in outage else max(0.0, round(rng.gauss(mean, math.sqrt(mean))))
        minutes.append(at)
        requests.append(value)
    return minutes, requests


def write_csv(path: str, minutes: list[datetime], requests: list[float], zone: str | None = None) -> None:
    """Write a trace as ``timestamp,requests``: aware UTC stamps, or naive local ones in ``zone``."""
    tz = ZoneInfo(zone) if zone else None
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("timestamp,requests\n")
        for at, value in zip(minutes, requests, strict=True):
            stamp = (
                at.astimezone(tz).replace(tzinfo=None).isoformat()
                if tz
                else at.isoformat().replace("+00:00", "Z")
            )
            handle.write(f"{stamp},{int(value)}\n")
