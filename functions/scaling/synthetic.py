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
    bursts, missing, outage = _incidents(spec, rng)
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


def _incidents(
    spec: TraceSpec | IrregularSpec, rng: random.Random
) -> tuple[list[tuple[int, int, float]], set[int], range]:
    """The trace's bursts (first minute, end, factor), the minutes of its long gaps and its outage,
    as minute indexes; drawn first, so a seed gives the same incidents whatever follows."""
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
    return bursts, missing, outage


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


@dataclass(frozen=True)
class IrregularSpec:
    """What real traffic does that the regular generator does not: holidays (a weekday at a
    Sunday's level or lower), level shifts that stay (a launch, a customer leaving), the weekly
    pattern changing (peaks move an hour, weekends get busier), correlated noise (slow drifts of
    minutes to hours), more and longer bursts, slow campaign ramps, gaps and an outage."""

    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    days: int = 42
    zone: str = "UTC"
    night_rpm: float = 300.0
    day_rpm: float = 3000.0
    seed: int = 7
    holidays: tuple[int, ...] = (15, 24, 38)  # day indexes (a Tuesday, a Thursday, a Friday)
    holiday_factor: float = 0.45
    shifts: tuple[tuple[float, float], ...] = ((19.4, 1.35), (31.6, 0.75))  # (day, factor)
    pattern_change_day: int = 28  # from then on peaks an hour earlier, weekends at 75%
    weekend_factor: tuple[float, float] = (0.55, 0.75)
    drift: float = 0.12  # AR(1) log-noise, per-minute step std of about drift/10
    count_noise: float = 0.05
    bursts_per_week: float = 7.0
    burst_factor: tuple[float, float] = (1.5, 4.0)
    burst_minutes: tuple[int, int] = (3, 90)
    campaigns: tuple[tuple[float, float, float], ...] = ((9.6, 3.0, 1.7), (26.3, 4.0, 1.5))  # day, hours, x
    outage: tuple[float, float] | None = (33.45, 2.5)  # (start day, hours)
    gap_share: float = 0.02
    long_gaps: tuple[tuple[float, float], ...] = ((12.2, 5.0), (35.7, 9.0))


def generate_irregular(spec: IrregularSpec) -> tuple[list[datetime], list[float]]:
    rng = random.Random(spec.seed)
    zone = ZoneInfo(spec.zone)
    total = spec.days * 1440
    bursts, missing, outage = _incidents(spec, rng)
    drift = 0.0
    keep = math.exp(-1 / 90)  # correlation time of about 90 minutes
    step = spec.drift * math.sqrt(1 - keep * keep)
    minutes: list[datetime] = []
    requests: list[float] = []
    for index in range(total):
        drift = drift * keep + rng.gauss(0, step)
        at = spec.start + index * MINUTE
        if index in missing or rng.random() < spec.gap_share:
            continue
        local = at.astimezone(zone)
        day = index / 1440
        changed = day >= spec.pattern_change_day
        shifted = local + timedelta(hours=1) if changed else local
        weekend = spec.weekend_factor[1 if changed else 0]
        weekly = weekend if local.weekday() >= 5 else 1.0
        if int(day) in spec.holidays:
            weekly = min(weekly, spec.holiday_factor)
        level = math.prod(factor for when, factor in spec.shifts if day >= when)
        mean = (spec.night_rpm + (spec.day_rpm - spec.night_rpm) * _shape(shifted) * weekly) * level
        for when, hours, factor in spec.campaigns:
            if when <= day < when + hours / 24:
                mean *= factor
        for begin, end, factor in bursts:
            if begin <= index < end:
                mean *= factor
        mean *= math.exp(drift + rng.gauss(0, spec.count_noise))
        value = 0.0 if index in outage else max(0.0, round(rng.gauss(mean, math.sqrt(mean))))
        minutes.append(at)
        requests.append(value)
    return minutes, requests
