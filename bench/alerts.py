"""Alert evaluation bench: cost per cycle against the number of series, and detection quality of
the anomaly detector against a static 3-sigma rule on a labelled synthetic set.

    .venv/bin/python bench/alerts.py            # both parts
    .venv/bin/python bench/alerts.py --quality  # only the detection quality
    .venv/bin/python bench/alerts.py --speed    # only the timing

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

    @property
    def times(self) -> list[datetime]:
        return [T0 + timedelta(seconds=i * self.interval) for i in range(len(self.values))]

    def windows(self) -> list[tuple[int, int]]:
        if not self.onsets:
            return []
        width = max(2, int(0.1 * len(self.values) / len(self.onsets)))
        return [(max(0, o - width // 2), min(len(self.values) - 1, o + width // 2)) for o in self.onsets]


# -- the generator ----------------------------------------------------------------------------------
def _base(kind: str, n: int, interval: int, rng: random.Random) -> tuple[list[float], float]:
    """A clean series of ``kind`` and its typical noise scale."""
    day = 86400 / interval
    if kind == "gauss":
        level, sigma = rng.uniform(10, 100), rng.uniform(0.5, 5)
        return [level + rng.gauss(0, sigma) for _ in range(n)], sigma
    if kind == "heavy_tail":
        level, sigma = rng.uniform(20, 60), rng.uniform(0.5, 3)
        return [level + sigma * _student_t(rng, 3) for _ in range(n)], sigma * 1.7
    if kind == "ar1":  # CPU-like: slow wandering around a level
        level, sigma, phi = rng.uniform(20, 60), rng.uniform(0.5, 2), rng.uniform(0.85, 0.97)
        x, out = 0.0, []
        for _ in range(n):
            x = phi * x + rng.gauss(0, sigma)
            out.append(max(0.0, level + x))
        return out, sigma / math.sqrt(1 - phi * phi)
    if kind == "seasonal":  # daily traffic with a weekend dip, multiplicative noise
        base, amp, noise = rng.uniform(200, 2000), rng.uniform(0.3, 0.7), rng.uniform(0.03, 0.08)
        out = []
        for i in range(n):
            phase = 2 * math.pi * i / day
            weekday = int(i / day) % 7
            weekly = 0.75 if weekday >= 5 else 1.0
            mean = base * weekly * (1 + amp * math.sin(phase - math.pi / 2))
            out.append(max(0.0, mean * (1 + rng.gauss(0, noise))))
        return out, base * noise
    if kind == "counts":  # sparse integer counts
        lam = rng.uniform(0.3, 4)
        return [float(_poisson(rng, lam)) for _ in range(n)], math.sqrt(lam)
    if kind == "flat":  # quantised, nearly constant (idle CPU)
        level, q = rng.uniform(0.1, 5), rng.choice([0.01, 0.1])
        return [round((level + rng.gauss(0, q * 0.6)) / q) * q for _ in range(n)], q
    if kind == "bursty":  # natural short bursts (disk writes, batch jobs)
        level, sigma = rng.uniform(50, 200), rng.uniform(2, 8)
        out = []
        for _ in range(n):
            burst = rng.expovariate(1 / (6 * sigma)) if rng.random() < 0.03 else 0.0
            out.append(level + rng.gauss(0, sigma) + burst)
        return out, sigma
    raise ValueError(kind)


def _student_t(rng: random.Random, df: int) -> float:
    chi = sum(rng.gauss(0, 1) ** 2 for _ in range(df))
    return rng.gauss(0, 1) / math.sqrt(chi / df)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _inject(  # noqa: PLR0917
    values: list[float], kind: str, at: int, scale: float, interval: int, rng: random.Random
) -> None:
    n = len(values)
    hour = max(1, round(3600 / interval))
    sign = rng.choice([1, -1])
    level = sorted(values[max(0, at - 200) : at])[len(values[max(0, at - 200) : at]) // 2]
    if kind == "spike":
        size = rng.uniform(8, 20) * scale
        for i in range(at, min(n, at + rng.randint(1, 3))):
            values[i] += size if sign > 0 or level - size > 0 else -size
    elif kind == "shift":
        size = rng.uniform(4, 10) * scale * sign
        if level + size < 0:
            size = -size
        end = n if rng.random() < 0.5 else min(n, at + rng.randint(6 * hour, 48 * hour))
        for i in range(at, end):
            values[i] += size
    elif kind == "drift":
        length = rng.randint(3 * hour, 12 * hour)
        size = rng.uniform(8, 15) * scale
        for i in range(at, n):
            values[i] += size * min(1.0, (i - at + 1) / length)
    elif kind == "outage":
        length = rng.randint(hour, 12 * hour)
        for i in range(at, min(n, at + length)):
            values[i] = 0.0
    elif kind == "noise":
        length = rng.randint(2 * hour, 12 * hour)
        for i in range(at, min(n, at + length)):
            values[i] += rng.gauss(0, 6 * scale)
    elif kind == "flatline":  # the signal freezes at its last value (a stuck exporter)
        length = rng.randint(6 * hour, 24 * hour)
        for i in range(at, min(n, at + length)):
            values[i] = values[at - 1]


ANOMALIES = {
    "gauss": ["spike", "shift", "drift", "noise"],
    "heavy_tail": ["spike", "shift", "drift", "outage"],
    "ar1": ["spike", "shift", "outage"],
    "seasonal": ["spike", "shift", "outage", "flatline"],
    "counts": ["shift", "outage"],
    "flat": ["spike", "shift"],
    "bursty": ["shift", "outage", "noise"],
}


def generate(count: int = 60, seed: int = 7) -> list[Labelled]:
    """``count`` labelled series: every base shape, 0 to 3 anomalies each (a fifth are clean)."""
    rng = random.Random(seed)
    kinds = list(ANOMALIES)
    out = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        interval = rng.choice([300, 300, 600, 900, 1800])
        days = rng.uniform(10, 30) if interval >= 900 else rng.uniform(8, 20)
        n = int(days * 86400 / interval)
        values, scale = _base(kind, n, interval, rng)
        series = Labelled(f"{index:03d}-{kind}-{interval // 60}m", interval, values)
        anomalies = 0 if rng.random() < 0.2 else rng.randint(1, 3)
        if anomalies:
            start, span = int(0.2 * n), int(0.75 * n)
            slots = sorted(rng.sample(range(anomalies * 3), anomalies))
            for slot in slots:
                at = start + int((slot + rng.random() * 0.5) * span / (anomalies * 3))
                what = rng.choice(ANOMALIES[kind])
                _inject(values, what, at, scale, interval, rng)
                series.onsets.append(at)
                series.kinds.append(what)
        out.append(series)
    return out


# -- detectors ---------------------------------------------------------------------------------------
def run_detector(series: Labelled, config: DetectorConfig | None = None) -> list[int]:
    detector = AnomalyDetector(config)
    return [
        i
        for i, (t, v) in enumerate(zip(series.times, series.values, strict=False))
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

    def add(self, series: Labelled, starts: list[int]) -> None:
        windows = series.windows()
        self.windows += len(windows)
        self.alerts += len(starts)
        for (lo, hi), onset in zip(windows, series.onsets, strict=False):
            self.perfect += _sigmoid(-1.0)
            inside = [s for s in starts if lo <= s <= hi]
            if inside:
                y = (inside[0] - hi) / max(1, hi - lo)
                self.raw += _sigmoid(y)
                self.detected += 1
                self.delays.append((inside[0] - onset) * series.interval / 60)
            else:
                self.raw -= 1
        outside = [s for s in starts if not any(lo <= s <= hi for lo, hi in windows)]
        self.false_alerts += len(outside)
        self.raw -= FP_COST * len(outside)

    @property
    def normalised(self) -> float:
        return 100 * (self.raw + self.windows) / (self.perfect + self.windows) if self.windows else 0.0

    def summary(self) -> dict[str, float]:
        true_alerts = self.alerts - self.false_alerts
        delays = sorted(self.delays)
        return {
            "score": round(self.normalised, 1),
            "precision": round(true_alerts / self.alerts, 3) if self.alerts else 0.0,
            "recall": round(self.detected / self.windows, 3) if self.windows else 0.0,
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "median_delay_min": round(delays[len(delays) // 2], 1) if delays else 0.0,
        }


def _sigmoid(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def quality(count: int = 60, seed: int = 7, verbose: bool = False) -> dict[str, dict[str, float]]:
    data = generate(count, seed)
    ours, static = Score(), Score()
    for series in data:
        starts = run_detector(series)
        ours.add(series, starts)
        static.add(series, run_static_3sigma(series))
        if verbose:
            print(
                f"  {series.name:24s} onsets={series.onsets} {series.kinds} "
                f"windows={series.windows()} alerts={starts}"
            )
    return {"anomaly detector": ours.summary(), "static 3-sigma": static.summary()}


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--series", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    both = not (args.quality or args.speed)
    if args.quality or both:
        started = time.perf_counter()
        results = quality(args.series, args.seed, args.verbose)
        print(f"detection quality on {args.series} generated series (seed {args.seed}), NAB-style:")
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


if __name__ == "__main__":
    main()
