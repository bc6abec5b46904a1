"""The alerts bench's detection quality: the anomaly detector and a static 3-sigma rule on the
generated labelled series, scored NAB-style (see ``alerts.py``)."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_data import Labelled, generate  # noqa: E402
from functions.alerts.detector import AnomalyDetector  # noqa: E402
from functions.alerts.detector_config import DetectorConfig  # noqa: E402

FP_COST = 0.11


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
