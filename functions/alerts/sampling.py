"""What the anomaly detector chooses once per series: the sampling interval, which turns every
span of the configuration into points, and the value scale (raw or logarithmic)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from functions.alerts.detector_config import DetectorConfig

# Gaps seen before the interval is fixed: their median, so a missing row or jitter does not count.
INTERVAL_GAPS = 10


@dataclass
class Spans:
    interval: float
    reference: int
    shift: int
    level: int
    warmup: int
    cooldown: int
    day: int
    week: int
    long: int
    long_reference: int


def clamp(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(round(value), bounds[0]), bounds[1]))


def median_gap(gaps: list[float]) -> float:
    ordered = sorted(gaps)
    return ordered[len(ordered) // 2]


def spans_for(config: DetectorConfig, interval: float) -> Spans:
    """Every span of ``config`` in points at this sampling interval (seconds), within its bounds."""
    c = config
    interval = max(interval, 1e-3)
    day = round(86400 / interval)
    return Spans(
        interval=interval,
        reference=clamp(c.reference_seconds / interval, c.reference_points),
        shift=clamp(c.shift_seconds / interval, c.shift_points),
        level=clamp(c.level_seconds / interval, c.level_points),
        warmup=clamp(c.warmup_seconds / interval, c.warmup_points),
        cooldown=clamp(c.cooldown_seconds / interval, c.cooldown_points),
        day=day,
        week=7 * day,
        long=clamp(c.long_seconds / interval, c.long_points) if c.long_seconds else 0,
        long_reference=clamp(c.long_reference_seconds / interval, c.long_reference_points),
    )


class Transform:
    """Log scale for positive right-skewed data (bytes, counts, latencies): a burst of x10 and a
    drop to a tenth weigh the same, and heavy tails stop dominating the spread. Chosen once, from
    the warm-up points."""

    def __init__(self, offset: float | None) -> None:
        self.offset = offset  # None: identity

    @classmethod
    def choose(cls, values: list[float], quantum: float) -> Transform:
        ordered = sorted(values)
        n = len(ordered)
        low, q50, high = ordered[n // 100], ordered[n // 2], ordered[min(n - 1, (99 * n) // 100)]
        if ordered[0] < 0 or high <= q50:
            return cls(None)
        if (high - q50) <= 3.0 * (q50 - low):  # roughly symmetric: keep the raw scale
            return cls(None)
        step = quantum if math.isfinite(quantum) else 0.0
        return cls(max(0.5 * q50, step, 1e-6 * high, 1e-12))

    def __call__(self, value: float) -> float:
        if self.offset is None:
            return value
        return math.log(max(value, 0.0) + self.offset)

    def inverse(self, value: float) -> float:
        if self.offset is None:
            return value
        return math.exp(min(value, 700.0)) - self.offset
