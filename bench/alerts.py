"""Alert evaluation bench: cost per cycle against the number of series, and detection quality of
the anomaly detector against a static 3-sigma rule on a labelled synthetic set.

    .venv/bin/python bench/alerts.py            # both parts
    .venv/bin/python bench/alerts.py --quality  # only the detection quality
    .venv/bin/python bench/alerts.py --speed    # only the timing
    .venv/bin/python bench/alerts.py --quality --quick --split tuning   # while tuning (small)

The generated set imitates cloud-monitoring exports and is calibrated so that a static 3-sigma
rule scores strongly negative, as it does on real data: heavy-tailed noise, bursts, scheduled jobs
and partial scrapes that are not incidents, sparse integer counts, flat-lines with blips,
daily/weekly cycles, benign drifts, CPU bounded at 0-100, rows missing and jittered timestamps,
5-30 min resolution, 4-60 days. Two splits with different seeds: tune on ``tuning``, report
``held-out``.

Quality is scored NAB-style: a window of 10% of the series length divided by its number of
anomalies is centred on each anomaly onset; the first alert *starting* in a window earns
2/(1+e^(5y)) - 1 (y = -1 at the window start, 0 at its end), a window without one costs -1,
an alert starting outside every window costs 0.11. Normalised so that no alerts scores 0 and a
detection at every window start scores 100.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from functions.alerts.detector import AnomalyDetector, DetectorConfig

T0 = datetime(2024, 3, 4, tzinfo=UTC)
FP_COST = 0.11


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


# -- the generator ----------------------------------------------------------------------------------
# Families modelled on cloud-monitoring exports (EC2/RDS/ELB-like): each is a clean process plus
# nuisance events that are NOT incidents (heavy-tailed bursts, blips, benign drifts and small
# shifts), because that is what makes static thresholds fire constantly on real data.
FAMILIES = ("cpu", "network", "requests", "sparse", "latency", "flat", "traffic", "temperature")
INCIDENTS = {
    "cpu": ["shift", "ramp", "spike", "drop"],
    "network": ["surge", "drop", "shift"],
    "requests": ["spike", "outage", "shift"],
    "sparse": ["storm", "shift"],
    "latency": ["shift", "ramp", "spike"],
    "flat": ["step", "storm"],
    "traffic": ["dip", "spike", "outage"],
    "temperature": ["drop", "ramp", "spike"],
}


def _pareto(rng: random.Random, alpha: float) -> float:
    return rng.paretovariate(alpha)


def _daily(i: int, interval: int, phase: float, sharp: float) -> float:
    """A day curve in [0, 1]: low at night, a broad (``sharp`` 1) to narrow (8) day peak; narrow
    peaks hover around static thresholds every day."""
    hour = ((i * interval) / 3600 + phase) % 24
    return math.sin(math.pi * (hour - 6) / 16) ** sharp if 6 <= hour <= 22 else 0.0


def _weekly(i: int, interval: int) -> float:
    return 0.6 if int(i * interval / 86400) % 7 >= 5 else 1.0


def _bursts(n: int, rng: random.Random, rate: float) -> list[int]:
    """Start points of nuisance bursts: clustered (bursts come in flurries), ``rate`` per point."""
    starts, i = [], 0
    rate *= 2.5
    while i < n:
        i += max(1, int(rng.expovariate(rate)))
        if i < n:
            starts.append(i)
            if rng.random() < 0.3:  # a flurry
                starts.extend(min(n - 1, i + rng.randint(1, 12)) for _ in range(rng.randint(1, 4)))
    return starts


@dataclass
class _Shape:
    """A clean series on a regular grid; ``scale`` the size of ordinary variation, ``bounds`` its
    physical limits, ``quantum`` its resolution."""

    values: list[float]
    scale: float
    low: float = 0.0
    high: float = math.inf
    quantum: float = 0.0
    multiplicative: bool = False


def _base(kind: str, n: int, interval: int, rng: random.Random) -> _Shape:
    day_phase, sharp = rng.uniform(0, 24), rng.choice([1, 2, 4, 8])
    seasonal = rng.random() < 0.5
    if kind == "cpu":  # 0..100, AR(1), bursts up to saturation, maybe a daily cycle
        level, phi = rng.uniform(3, 55), rng.uniform(0.5, 0.97)
        sigma = rng.uniform(0.3, 0.08 * level + 0.5)
        amp = rng.uniform(0.2, 0.6) * level if seasonal else 0.0
        x, out = 0.0, []
        for i in range(n):
            x = phi * x + sigma * _student_t(rng, 3)
            out.append(level + amp * (_daily(i, interval, day_phase, sharp) - 0.5) + x)
        for b in _bursts(n, rng, rng.uniform(0.005, 0.05)):
            size = sigma * rng.uniform(3, 8) * _pareto(rng, 1.6)
            for j in range(b, min(n, b + rng.randint(1, 4))):
                out[j] += size
        return _Shape(out, sigma / math.sqrt(1 - phi * phi), 0.0, 100.0, rng.choice([0.002, 0.01, 0.1]))
    if kind == "network":  # bytes: log-normal, heavy bursts, maybe daily
        base, sigma = 10 ** rng.uniform(4, 8), rng.uniform(0.2, 0.9)
        amp = rng.uniform(0.3, 0.8) if seasonal else 0.0
        out = [
            base * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp)) * math.exp(rng.gauss(0, sigma))
            for i in range(n)
        ]
        for b in _bursts(n, rng, rng.uniform(0.01, 0.06)):
            size = rng.uniform(1, 4) * _pareto(rng, 1.3)
            for j in range(b, min(n, b + rng.randint(1, 3))):
                out[j] *= 1 + size
        return _Shape(out, sigma, quantum=1.0, multiplicative=True)
    if kind == "requests":  # ELB request counts: Poisson around a daily/weekly mean, bursty
        base, amp = 10 ** rng.uniform(0.7, 3), rng.uniform(0.3, 0.8) if seasonal else 0.0
        over = rng.uniform(0.1, 0.5)  # over-dispersion: real counts are far from Poisson
        out = []
        for i in range(n):
            mean = base * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp)) * _weekly(i, interval)
            out.append(float(_poisson(rng, mean * math.exp(rng.gauss(0, over)))))
        for b in _bursts(n, rng, rng.uniform(0.01, 0.05)):
            size = rng.uniform(0.5, 3) * _pareto(rng, 1.5)
            for j in range(b, min(n, b + rng.randint(1, 3))):
                out[j] = float(_poisson(rng, max(out[j], 1.0) * (1 + size)))
        return _Shape(out, over + 1 / math.sqrt(base), quantum=1.0, multiplicative=True)
    if kind == "sparse":  # error counts: mostly zero, rare blips
        lam = rng.uniform(0.02, 1.0)
        out = [float(_poisson(rng, lam)) for _ in range(n)]
        for b in _bursts(n, rng, rng.uniform(0.005, 0.03)):
            out[b] += float(rng.randint(2, 12))
        return _Shape(out, max(1.0, math.sqrt(lam)), quantum=1.0)
    if kind == "latency":  # seconds, log-normal with rare huge outliers
        base, sigma = rng.uniform(0.02, 0.8), rng.uniform(0.08, 0.5)
        amp = rng.uniform(0.1, 0.4) if seasonal else 0.0
        out = [
            base * (1 + amp * _daily(i, interval, day_phase, sharp)) * math.exp(rng.gauss(0, sigma))
            for i in range(n)
        ]
        for b in _bursts(n, rng, rng.uniform(0.01, 0.06)):
            out[b] *= 1 + rng.uniform(0.5, 3) * _pareto(rng, 1.4)
        return _Shape(out, sigma, quantum=0.0001, multiplicative=True)
    if kind == "flat":  # a constant with rare blips (disk writes, queue depth, idle gauges)
        level = rng.choice([0.0, 0.0, round(rng.uniform(1, 100), 1)])
        q = rng.choice([0.1, 1.0])
        noisy = rng.random() < 0.5
        out = [
            level + (round(rng.gauss(0, q) / q) * q if noisy and rng.random() < 0.2 else 0.0)
            for _ in range(n)
        ]
        for b in _bursts(n, rng, rng.uniform(0.003, 0.03)):
            out[b] += rng.uniform(5, 50) * q * rng.choice([1, 1, -1 if level else 1])
        return _Shape(out, 5 * q, 0.0, math.inf, q)
    if kind == "traffic":  # strong daily + weekly cycle, multiplicative noise
        base, amp, noise = 10 ** rng.uniform(1.5, 3.5), rng.uniform(0.5, 0.9), rng.uniform(0.04, 0.15)
        out = [
            base
            * (1 - amp + 2 * amp * _daily(i, interval, day_phase, sharp))
            * _weekly(i, interval)
            * (1 + noise * _student_t(rng, 4))
            for i in range(n)
        ]
        for b in _bursts(n, rng, rng.uniform(0.005, 0.03)):
            out[b] *= 1 + rng.uniform(0.3, 1.0) * _pareto(rng, 1.5)
        return _Shape(out, noise, multiplicative=True)
    if kind == "temperature":  # a slowly wandering gauge (machine temperature, memory)
        level, phi, sigma = rng.uniform(40, 90), rng.uniform(0.98, 0.998), rng.uniform(0.1, 0.6)
        x, out = 0.0, []
        for _ in range(n):
            x = phi * x + rng.gauss(0, sigma)
            out.append(level + x + rng.gauss(0, sigma))
        for b in _bursts(n, rng, rng.uniform(0.003, 0.02)):  # sensor glitches
            out[b] += rng.choice([-1, 1]) * sigma * rng.uniform(4, 10) * _pareto(rng, 1.5)
        return _Shape(out, sigma / math.sqrt(1 - phi * phi) * 0.5, quantum=0.01)
    raise ValueError(kind)


def _student_t(rng: random.Random, df: int) -> float:
    chi = sum(rng.gauss(0, 1) ** 2 for _ in range(df))
    return rng.gauss(0, 1) / math.sqrt(chi / df)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:  # normal approximation: exact sampling is O(lam)
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _local_level(values: list[float], at: int, span: int) -> tuple[float, float]:
    """Median and a robust spread of the points before ``at``."""
    window = sorted(values[max(0, at - span) : at]) or [0.0]
    med = window[len(window) // 2]
    q1, q3 = window[len(window) // 4], window[(3 * len(window)) // 4]
    return med, max(q3 - q1, 1e-9)


def _inject(  # noqa: PLR0917
    values: list[float], kind: str, at: int, shape: _Shape, interval: int, rng: random.Random
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
            values[i] += float(_poisson(rng, rate))


def _benign(values: list[float], shape: _Shape, interval: int, rng: random.Random) -> None:
    """What a human would not page for: scheduled jobs (a burst every 1-24 h: cron, backups, GC),
    a slow drift over days and a small lasting shift."""
    n = len(values)
    # Partial scrapes and counter resets: single points far below the level (positive metrics).
    if not shape.low < 0 and rng.random() < 0.7:
        for i in _bursts(n, rng, rng.uniform(0.004, 0.03)):
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


def _finish(values: list[float], shape: _Shape) -> list[float]:
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
        shape = _base(kind, n, interval, rng)
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


# -- detectors ---------------------------------------------------------------------------------------
def run_detector(series: Labelled, config: DetectorConfig | None = None) -> list[int]:
    detector = AnomalyDetector(config)
    return [
        i
        for i, (t, v) in enumerate(zip(series.times, series.values, strict=True))
        if detector.update(t, v).started
    ]


def run_static_3sigma(series: Labelled) -> list[int]:
    """The seeds' rule: mean ± 3 std of everything so far; consecutive hits are one alert."""
    starts, total, total_sq, inside = [], 0.0, 0.0, False
    for i, v in enumerate(series.values):
        if i >= 30:
            mean = total / i
            std = math.sqrt(max(total_sq / i - mean * mean, 0.0))
            hit = abs(v - mean) > 3 * std
            if hit and not inside:
                starts.append(i)
            inside = hit
        total += v
        total_sq += v * v
    return starts


# -- the scorer --------------------------------------------------------------------------------------
@dataclass
class Score:
    raw: float = 0.0
    windows: int = 0
    detected: int = 0
    alerts: int = 0
    false_alerts: int = 0
    delays: list[float] = field(default_factory=list)
    perfect: float = 0.0
    missed: Counter[str] = field(default_factory=Counter)  # missed windows by incident kind
    false_by_family: Counter[str] = field(default_factory=Counter)

    def add(self, series: Labelled, starts: list[int]) -> None:
        windows = series.windows()
        self.windows += len(windows)
        self.alerts += len(starts)
        for (lo, hi), onset, kind in zip(windows, series.onsets, series.kinds, strict=False):
            self.perfect += _sigmoid(-1.0)
            inside = [s for s in starts if lo <= s <= hi]
            if inside:
                y = (inside[0] - hi) / max(1, hi - lo)
                self.raw += _sigmoid(y)
                self.detected += 1
                self.delays.append((inside[0] - onset) * series.interval / 60)
            else:
                self.raw -= 1
                self.missed[kind] += 1
        outside = [s for s in starts if not any(lo <= s <= hi for lo, hi in windows)]
        self.false_alerts += len(outside)
        self.false_by_family[series.family] += len(outside)
        self.raw -= FP_COST * len(outside)

    @property
    def normalised(self) -> float:
        return 100 * (self.raw + self.windows) / (self.perfect + self.windows) if self.windows else 0.0

    def summary(self, series: int) -> dict[str, float]:
        true_alerts = self.alerts - self.false_alerts
        delays = sorted(self.delays)
        return {
            "score": round(self.normalised, 1),
            "precision": round(true_alerts / self.alerts, 3) if self.alerts else 0.0,
            "recall": round(self.detected / self.windows, 3) if self.windows else 0.0,
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "false_per_series": round(self.false_alerts / max(1, series), 2),
            "median_delay_min": round(delays[len(delays) // 2], 1) if delays else 0.0,
        }


def _sigmoid(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


SPLITS = {"tuning": 7, "held-out": 1007}


def detectors(
    variants: dict[str, DetectorConfig] | None = None,
) -> dict[str, Callable[[Labelled], list[int]]]:
    out: dict[str, Callable[[Labelled], list[int]]] = {
        "anomaly detector": lambda s: run_detector(s, DetectorConfig())
    }
    for name, config in (variants or {}).items():
        out[name] = lambda s, c=config: run_detector(s, c)
    out["static 3-sigma"] = run_static_3sigma
    return out


def quality(
    count: int = 48,
    seed: int = 7,
    verbose: bool = False,
    max_rows: int = 17280,
    variants: dict[str, DetectorConfig] | None = None,
) -> dict[str, dict[str, float]]:
    data = generate(count, seed, max_rows)
    runs = detectors(variants)
    scores = {name: Score() for name in runs}
    for series in data:
        for name, run in runs.items():
            starts = run(series)
            scores[name].add(series, starts)
            if verbose and name == "anomaly detector":
                print(
                    f"  {series.name:24s} n={len(series.values)} onsets={series.onsets} {series.kinds} "
                    f"windows={series.windows()} alerts={starts}"
                )
    if verbose:
        for name, score in scores.items():
            print(f"  {name}: missed windows by kind {dict(score.missed.most_common())}")
            print(f"  {name}: false alerts by family {dict(score.false_by_family.most_common())}")
    return {name: score.summary(len(data)) for name, score in scores.items()}


def speed(sizes: tuple[int, ...] = (100, 1_000, 10_000), cycles: int = 3) -> list[tuple[int, float]]:
    """Seconds per evaluation cycle of a threshold rule grouped per series (an error-rate style
    ratio would double the queries): replay source, in-memory state, a fifth of series firing."""
    from functions.alerts.engine import Evaluator
    from functions.alerts.rules import parse_rules
    from functions.alerts.source import ReplaySource
    from functions.alerts.state import MemoryStateStore

    rule = parse_rules(
        {
            "rules": [
                {
                    "name": "bench",
                    "metric": "m",
                    "agg": "p95",
                    "window": "5m",
                    "op": ">",
                    "threshold": 100,
                    "for": "2m",
                    "group_by": ["series"],
                    "severity": "high",
                    "annotations": {"summary": "{value}"},
                }
            ]
        }
    )[0]
    rng = random.Random(1)
    out = []
    for size in sizes:
        source = ReplaySource()
        for s in range(size):
            level = 150.0 if s % 5 == 0 else 50.0
            points = [
                (T0 + timedelta(seconds=15 * i), level + rng.gauss(0, 5)) for i in range(4 * (cycles + 6))
            ]
            source.add("m", {"series": str(s)}, points)
        evaluator = Evaluator(source, MemoryStateStore())
        evaluator.run([rule], T0 + timedelta(minutes=5))  # states created (pending)
        started = time.perf_counter()
        for c in range(cycles):
            evaluator.run([rule], T0 + timedelta(minutes=6 + c))
        out.append((size, (time.perf_counter() - started) / cycles))
    return out


def _deep_size(root: object) -> int:
    """Bytes held by an object graph (each object counted once): the detector's state."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return total


def _seasonal_counts(n: int, interval: int, seed: int) -> list[float]:
    """Request counts per step with a daily cycle, Poisson-like noise and a few bursts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hour = (i * interval / 3600) % 24
        mean = 400 * (0.2 + 0.8 * max(0.0, math.sin(math.pi * (hour - 6) / 16)))
        value = rng.gauss(mean, math.sqrt(mean) + 0.05 * mean) * (3 if rng.random() < 0.005 else 1)
        out.append(float(max(0, round(value))))
    return out


def detector_cost(days: tuple[int, ...] = (1, 7, 28, 60), interval: int = 300) -> list[dict[str, float]]:
    """Per series: the time to rebuild a detector from history (a cold instance), the time of one
    more point (a warm one: mean and the worst of 300, which includes the periodic seasonality
    check), and the state kept, after ``days`` of 5-minute points."""
    out = []
    for span in days:
        n = span * 86400 // interval
        values = _seasonal_counts(n + 300, interval, seed=span)
        ts = [T0 + timedelta(seconds=interval * i) for i in range(n + 300)]
        detector = AnomalyDetector()
        # CPU time of this process: what an instance spends, whatever else shares the machine.
        started = time.process_time()
        for t, v in zip(ts[:n], values[:n], strict=True):
            detector.update(t, v)
        rebuild = time.process_time() - started
        each = []
        for t, v in zip(ts[n:], values[n:], strict=True):
            started = time.process_time()
            detector.update(t, v)
            each.append(time.process_time() - started)
        out.append(
            {
                "days": span,
                "points": n,
                "rebuild_s": rebuild,
                "update_us": 1e6 * sum(each) / len(each),
                "update_max_us": 1e6 * max(each),
                "state_kb": _deep_size(detector) / 1024,
            }
        )
    return out


def anomaly_cycle(
    sizes: tuple[int, ...] = (100, 1_000), cycles: int = 3, days: int = 7
) -> list[tuple[int, float]]:
    """Seconds per evaluation cycle of an anomaly rule (5-minute steps, one detector per series)
    on a warm instance: every detector already holds ``days`` of history and takes one new step
    per cycle. The detectors are copies of one warmed detector (building 1,000 from scratch is
    the cold case, ``rebuild_s`` above per series)."""
    import copy

    from functions.alerts.engine import DetectorCache, Evaluator
    from functions.alerts.rules import parse_rules
    from functions.alerts.source import ReplaySource
    from functions.alerts.state import MemoryStateStore

    rule = parse_rules(
        {
            "rules": [
                {
                    "name": "bench-anomaly",
                    "kind": "anomaly",
                    "metric": "m",
                    "agg": "avg",
                    "step": "5m",
                    "history": f"{days}d",
                    "group_by": ["series"],
                    "severity": "low",
                    "annotations": {"summary": "{value}"},
                }
            ]
        }
    )[0]
    interval = 300
    n = days * 86400 // interval
    values = _seasonal_counts(n + cycles, interval, seed=11)
    ts = [T0 + timedelta(seconds=interval * i) for i in range(n + cycles)]
    warm = AnomalyDetector()
    for t, v in zip(ts[:n], values[:n], strict=True):
        warm.update(t, v)
    out = []
    for size in sizes:
        source = ReplaySource()
        cache = DetectorCache()
        for s in range(size):
            labels = {"series": str(s)}
            tracked = cache.get(rule, labels)
            tracked.detector, tracked.last = copy.deepcopy(warm), ts[n - 1]
            source.add("m", labels, list(zip(ts[n:], values[n:], strict=True)))
        evaluator = Evaluator(source, MemoryStateStore(), detectors=cache)
        started = time.process_time()
        for c in range(cycles):
            evaluator.run([rule], ts[n + c] + timedelta(seconds=interval + 1))
        out.append((size, (time.process_time() - started) / cycles))
        del cache, evaluator
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--cost", action="store_true", help="only the detector's cost and state")
    parser.add_argument("--quick", action="store_true", help="16 shorter series per split")
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--series", type=int, default=48, help="series per split")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    both = not (args.quality or args.speed or args.cost)
    if args.quality or both:
        count, max_rows = (16, 4000) if args.quick else (args.series, 17280)
        for split, seed in SPLITS.items():
            if args.split not in (split, "both"):
                continue
            started = time.perf_counter()
            results = quality(count, seed, args.verbose, max_rows)
            print(f"detection quality, {split} split ({count} generated series, seed {seed}), NAB-style:")
            for name, summary in results.items():
                print(f"  {name:18s} " + "  ".join(f"{k}={v}" for k, v in summary.items()))
            print(f"  ({time.perf_counter() - started:.1f} s)")
    if args.speed or both:
        print("evaluation time per cycle (threshold rule, p95 over 5m, one alert per series):")
        figures = speed()
        base_size, base_time = figures[0]
        for size, seconds in figures:
            per = seconds / size * 1e6
            ratio = seconds / base_time / (size / base_size)
            print(
                f"  {size:>6} series  {seconds * 1000:9.1f} ms/cycle  {per:6.1f} us/series"
                f"  (x{ratio:.2f} of linear)"
            )
    if args.cost or both:
        print("anomaly detector per series (5-minute daily-seasonal counts; CPU time):")
        for row in detector_cost():
            print(
                f"  {row['days']:>3} days ({row['points']:>6} points): rebuild {row['rebuild_s']:6.2f} s"
                f"  ({1e6 * row['rebuild_s'] / row['points']:5.0f} us/point)"
                f"  update {row['update_us']:6.0f} us (worst of 300: {row['update_max_us'] / 1000:6.1f} ms)"
                f"  state {row['state_kb']:7.0f} KiB"
            )
        print(
            "anomaly rule, evaluation time per cycle on a warm instance (one new 5-minute step per series):"
        )
        for size, seconds in anomaly_cycle():
            print(
                f"  {size:>6} series  {seconds * 1000:9.1f} ms/cycle  {seconds / size * 1e6:6.1f} us/series"
            )


if __name__ == "__main__":
    main()
