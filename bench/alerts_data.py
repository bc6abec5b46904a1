"""The alerts bench's generated series, part 2: labelled series from the shapes of
``alerts_shapes.py``, with incidents injected (their onsets are the labels), benign changes,
rows missing and timestamps jittered."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_shapes import FAMILIES, INCIDENTS, Shape, base_shape, bursts, poisson  # noqa: E402

T0 = datetime(2024, 3, 4, tzinfo=UTC)


@dataclass
class Labelled:
    name: str
    interval: int
    values: list[float]
    onsets: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.name.split("-")[1]

    def windows(self) -> list[tuple[int, int]]:
        if not self.onsets:
            return []
        width = max(2, int(0.1 * len(self.values) / len(self.onsets)))
        return [(max(0, o - width // 2), min(len(self.values) - 1, o + width // 2)) for o in self.onsets]


def _local_level(values: list[float], at: int, span: int) -> tuple[float, float]:
    """Median and a robust spread of the points before ``at``."""
    window = sorted(values[max(0, at - span) : at]) or [0.0]
    med = window[len(window) // 2]
    q1, q3 = window[len(window) // 4], window[(3 * len(window)) // 4]
    return med, max(q3 - q1, 1e-9)


def _inject(  # noqa: PLR0917
    values: list[float], kind: str, at: int, shape: Shape, interval: int, rng: random.Random
) -> None:
    """An incident starting at ``at``. Sizes are relative to the local spread, drawn from a range
    that includes hard cases (some incidents are barely visible, as on real data)."""
    n = len(values)
    hour = max(1, round(3600 / interval))
    level, spread = _local_level(values, at, 12 * hour)
    spread = max(spread, 0.5 * shape.scale)  # flat series have no spread: size by resolution
    if kind in ("spike", "surge"):
        length = rng.randint(1, 3) if kind == "spike" else rng.randint(hour, 6 * hour)
        if shape.multiplicative:
            factor = rng.uniform(3, 12)
            for i in range(at, min(n, at + length)):
                values[i] = max(values[i], level) * factor
        else:
            size = spread * rng.uniform(5, 15) + 0.2 * abs(level)
            for i in range(at, min(n, at + length)):
                values[i] += size
    elif kind in ("shift", "step"):
        up = rng.random() < 0.7
        if shape.multiplicative:
            factor = rng.uniform(1.6, 4) if up else rng.uniform(0.2, 0.55)
            delta = 0.0
        else:
            factor = 1.0
            delta = (spread * rng.uniform(2.5, 8) + 0.15 * abs(level)) * (1 if up or level <= 0 else -1)
        end = n if rng.random() < 0.6 else min(n, at + rng.randint(4 * hour, 72 * hour))
        for i in range(at, end):
            values[i] = values[i] * factor + delta
    elif kind == "ramp":
        length = rng.randint(2 * hour, 24 * hour)
        target = spread * rng.uniform(4, 12) + 0.3 * abs(level)
        if shape.multiplicative:
            target = rng.uniform(1.5, 4)
        end = n if rng.random() < 0.5 else min(n, at + length + rng.randint(hour, 24 * hour))
        for i in range(at, end):
            frac = min(1.0, (i - at + 1) / length)
            values[i] = (
                values[i] * (1 + (target - 1) * frac) if shape.multiplicative else values[i] + target * frac
            )
    elif kind in ("drop", "outage", "dip"):
        length = rng.randint(hour, 24 * hour)
        keep = 0.0 if kind == "outage" else rng.uniform(0.0, 0.4)
        for i in range(at, min(n, at + length)):
            values[i] = (
                level + (values[i] - level) * 0.3 - (1 - keep) * abs(level)
                if kind == "drop"
                else values[i] * keep
            )
    elif kind == "storm":  # a sustained burst of activity (errors, writes)
        length = rng.randint(hour, 8 * hour)
        rate = max(3.0, level + rng.uniform(3, 15) * max(spread, shape.scale))
        for i in range(at, min(n, at + length)):
            values[i] += float(poisson(rng, rate))


def _benign(values: list[float], shape: Shape, interval: int, rng: random.Random) -> None:
    """What a human would not page for: scheduled jobs (a burst every 1-24 h: cron, backups, GC),
    a slow drift over days and a small lasting shift."""
    n = len(values)
    # Partial scrapes and counter resets: single points far below the level (positive metrics).
    if not shape.low < 0 and rng.random() < 0.7:
        for i in bursts(n, rng, rng.uniform(0.004, 0.03)):
            values[i] *= rng.uniform(0.0, 0.6)
    if rng.random() < 0.4:
        every = max(2, round(rng.choice([3600, 7200, 3 * 3600, 6 * 3600, 86400]) / interval))
        offset, length = rng.randrange(every), rng.randint(1, 3)
        size = rng.uniform(3, 10) * shape.scale
        for start in range(offset, n, every):
            for i in range(start, min(n, start + length)):
                values[i] = values[i] * (1 + size) if shape.multiplicative else values[i] + size
    if rng.random() < 0.5:
        size = rng.uniform(-2, 4) * shape.scale * (abs(values[0]) if shape.multiplicative else 1.0)
        start = rng.randrange(n)
        for i in range(start, n):
            values[i] += size * min(1.0, (i - start) / max(1, n // 3))
    if rng.random() < 0.3:
        at = rng.randrange(n // 5, n)
        spread = _local_level(values, at, 200)[1]
        size = spread * rng.uniform(0.5, 1.5)
        for i in range(at, n):
            values[i] += size


def _finish(values: list[float], shape: Shape) -> list[float]:
    out = []
    for raw in values:
        v = min(max(raw, shape.low), shape.high)
        out.append(round(v / shape.quantum) * shape.quantum if shape.quantum else v)
    return out


def generate(count: int = 48, seed: int = 7, max_rows: int = 17280) -> list[Labelled]:
    """``count`` labelled series, the families in turn: 5-30 min resolution, 3 days to 2 months
    (at most ``max_rows`` rows), 0-4 incidents each, rows missing at random and (some) jittered
    timestamps. Onsets are row indices after the rows were dropped."""
    out = []
    for index in range(count):
        rng = random.Random(seed * 100_003 + index)  # per series: editing one family moves no other
        kind = FAMILIES[index % len(FAMILIES)]
        interval = rng.choice([300, 300, 300, 600, 900, 1800])
        days = rng.uniform(4, 60)
        n = min(max_rows, max(1500, int(days * 86400 / interval)))
        shape = base_shape(kind, n, interval, rng)
        values = shape.values
        _benign(values, shape, interval, rng)
        incidents = 0 if rng.random() < 0.1 else rng.randint(1, 4)
        onsets: list[int] = []
        kinds: list[str] = []
        if incidents:
            start, span = int(0.12 * n), int(0.86 * n)
            slots = sorted(rng.sample(range(incidents * 3), incidents))
            for slot in slots:
                at = start + int((slot + rng.random() * 0.5) * span / (incidents * 3))
                what = rng.choice(INCIDENTS[kind])
                _inject(values, what, at, shape, interval, rng)
                onsets.append(at)
                kinds.append(what)
        values = _finish(values, shape)
        # Rows go missing (scrape failures, a collector restart) and some exporters jitter.
        miss = rng.choice([0.0, 0.002, 0.01, 0.03])
        jitter = interval * 0.2 if rng.random() < 0.3 else 0.0
        keep = [i for i in range(n) if rng.random() >= miss or i in onsets]
        if rng.random() < 0.3:  # one outage of the collector itself: hours without rows
            gap_at, gap = rng.randrange(n // 5, n), rng.randint(2, 24) * round(3600 / interval)
            keep = [i for i in keep if not gap_at <= i < gap_at + gap or i in onsets]
        position = {i: p for p, i in enumerate(keep)}
        times = [T0 + timedelta(seconds=i * interval + rng.uniform(-jitter, jitter)) for i in keep]
        series = Labelled(
            f"{index:03d}-{kind}-{interval // 60}m",
            interval,
            [values[i] for i in keep],
            [position[o] for o in onsets],
            kinds,
            times,
        )
        out.append(series)
    return out


# -- irregular series (issue 27): what production series do that the detector must live with --------
IRREGULAR_KINDS = ("level_shift", "seasonality_change")


def _seasonal_base(kind: str, n: int, interval: int, rng: random.Random) -> tuple[list[float], list[float]]:
    """A daily-seasonal series as (mean per point, multiplicative noise per point): request counts,
    traffic or latency, each with its own noise, so incidents can act on the mean alone."""
    phase, sharp = rng.uniform(0, 24), rng.choice([1, 2, 4])
    base = 10 ** rng.uniform(1, 3)
    amp = rng.uniform(0.3, 0.8) if kind != "latency" else rng.uniform(0.1, 0.4)
    noise = rng.uniform(0.05, 0.3)
    means = [
        base
        * (1 - amp + 2 * amp * _day_curve(i, interval, phase, sharp))
        * (_week(i, interval) if kind == "traffic" else 1.0)
        for i in range(n)
    ]
    return means, [math.exp(rng.gauss(0, noise)) for _ in range(n)]


def _day_curve(i: int, interval: int, phase: float, sharp: float) -> float:
    hour = ((i * interval) / 3600 + phase) % 24
    return math.sin(math.pi * (hour - 6) / 16) ** sharp if 6 <= hour <= 22 else 0.0


def _week(i: int, interval: int) -> float:
    return 0.6 if int(i * interval / 86400) % 7 >= 5 else 1.0


def drop_rows(
    rng: random.Random, n: int, onsets: list[int], gap_rows: Callable[[random.Random], int] | None
) -> tuple[list[int], dict[int, int]]:
    """Rows a collector kept: 1-3% lost at random and, when ``gap_rows`` is given, a run of that
    many rows lost where it was down (never an incident's onset). Returns the kept rows' indexes
    and each one's position among them."""
    keep_row = [rng.random() >= rng.choice([0.01, 0.03]) or i in onsets for i in range(n)]
    if gap_rows is not None:
        gap_at, gap = rng.randrange(n // 5, n), gap_rows(rng)
        for i in range(gap_at, min(n, gap_at + gap)):
            keep_row[i] = i in onsets
    keep = [i for i in range(n) if keep_row[i]]
    return keep, {i: p for p, i in enumerate(keep)}


def generate_irregular(count: int = 24, seed: int = 27) -> list[Labelled]:
    """``count`` daily-seasonal series (request counts, traffic, latency; 5 or 10 min; 10-21 days)
    with production's irregularities. Labelled (the onset is the label): a lasting **level shift**
    (x0.45-0.65 or x1.6-2.5) or a **seasonality change** (the daily swing doubled or flattened, or
    the peak moved by 4-8 hours: a deploy moved a batch, a new time zone's users). Not labelled,
    must not page: **missing data** (1-3% of rows at random, and a collector outage of 2-12 hours
    in half the series), **counter resets** (a process restart: the step's rate computed from a
    counter that started again at zero reads 0-40% of the true value, 1-3 times per series).
    One series in six has no incident: pure nuisance, what false alarms per week are made of."""
    out = []
    for index in range(count):
        rng = random.Random(seed * 1_000_003 + index)
        kind = ("requests", "traffic", "latency")[index % 3]
        interval = rng.choice([300, 300, 600])
        n = int(rng.uniform(10, 21) * 86400 / interval)
        means, noise = _seasonal_base(kind, n, interval, rng)
        onsets: list[int] = []
        kinds: list[str] = []
        if index % 6 != 5:
            at = int(rng.uniform(0.45, 0.85) * n)
            what = IRREGULAR_KINDS[(index // 3) % 2]
            day = round(86400 / interval)
            if what == "level_shift":
                factor = rng.uniform(1.6, 2.5) if rng.random() < 0.5 else rng.uniform(0.45, 0.65)
                for i in range(at, n):
                    means[i] *= factor
            else:
                change = rng.choice(["double", "flatten", "move"])
                level = sorted(means[max(0, at - day) : at])[day // 2 if at >= day else 0]
                moved = rng.randint(4, 8) * round(3600 / interval)
                original = list(means)
                for i in range(at, n):
                    if change == "double":
                        means[i] = max(0.05 * level, level + 2 * (original[i] - level))
                    elif change == "flatten":
                        means[i] = level + 0.25 * (original[i] - level)
                    else:
                        means[i] = original[i - moved] if i - moved >= 0 else original[i]
            onsets.append(at)
            kinds.append(what)
        values = [m * e for m, e in zip(means, noise, strict=True)]
        if kind == "requests":
            values = [float(poisson(rng, v)) for v in values]
        for _ in range(rng.randint(1, 3)):  # counter resets
            at = rng.randrange(n // 10, n)
            if at not in onsets:
                values[at] *= rng.uniform(0.0, 0.4)
        an_hour = round(3600 / interval)
        hours_down = (lambda r, rows=an_hour: r.randint(2, 12) * rows) if index % 2 == 0 else None
        keep, position = drop_rows(rng, n, onsets, hours_down)  # the collector itself down for hours
        out.append(
            Labelled(
                f"{index:03d}-{kind}-{interval // 60}m",
                interval,
                [values[i] for i in keep],
                [position[o] for o in onsets],
                kinds,
                [T0 + timedelta(seconds=i * interval) for i in keep],
            )
        )
    return out
