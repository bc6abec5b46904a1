"""The anomaly detector's triggers and their learned bars.

A *spike* is one point's |z|, a *shift* the median z of the last shift run, a *level* the median
z of the last level run, the *long-horizon* score the difference between the median of the last
hours and of the days before them, and the optional *CUSUM* Page's two-sided cumulative sum of
the clipped z-scores. Each bar is the larger of a floor and a multiple of a high quantile of the
scores of normal points seen so far, divided by the sensitivity.
"""

from __future__ import annotations

import math
from collections import deque

from functions.alerts.detector_config import DetectorConfig, Direction
from functions.alerts.robust_z import directed
from functions.alerts.sampling import Spans
from functions.alerts.sorted_window import SortedWindow

# Scores a learned bar needs before it counts (below: the floor alone).
MIN_LEARNED = 50


class RunMedians:
    """The z-scores of the last shift run and of the last level run, for their medians."""

    def __init__(self, shift: int, level: int) -> None:
        self.shift = shift
        self.recent: deque[float] = deque(maxlen=shift)
        self.level = SortedWindow(level)

    def push(self, z: float) -> None:
        self.recent.append(z)
        self.level.push(z)

    def shift_full(self) -> bool:
        return len(self.recent) >= self.shift

    def level_full(self) -> bool:
        return len(self.level) >= self.level.size

    def shift_median(self) -> float:
        ordered = sorted(self.recent)
        return ordered[len(ordered) // 2]


class LongHorizon:
    """The last hours of the signal and the days before them (what leaves one enters the other)."""

    def __init__(self, recent: int, reference: int) -> None:
        self.recent = SortedWindow(recent)
        self.reference = SortedWindow(reference)

    def push(self, signal: float) -> None:
        left = self.recent.push(signal)
        if left is not None:
            self.reference.push(left)

    def difference(self, direction: Direction) -> float | None:
        """|median of the last hours - median of the days before|, once the longer one is half full."""
        if len(self.reference) < self.reference.size // 2:
            return None
        return abs(directed(self.recent.median() - self.reference.median(), direction))


class Cusum:
    """Page's two-sided CUSUM of the z-scores clipped to +-``cusum_clip``, less ``cusum_k`` a point."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.up = 0.0
        self.down = 0.0

    def step(self, z: float) -> float:
        """One step of the two-sided CUSUM; returns its score, the larger side."""
        c = self.config
        clipped = min(max(z, -c.cusum_clip), c.cusum_clip)
        self.up = max(0.0, self.up + clipped - c.cusum_k)
        self.down = max(0.0, self.down - clipped - c.cusum_k)
        return max(self.up, self.down)

    def restart(self) -> None:
        self.up = self.down = 0.0


class LearnedBars:
    """The scores of normal points per trigger (the last ``score_memory``) and the bars they set."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.spike_scores = SortedWindow(config.score_memory)
        self.shift_scores = SortedWindow(config.score_memory)
        self.level_scores = SortedWindow(config.score_memory)
        self.long_scores = SortedWindow(config.score_memory)
        self.cusum_scores = SortedWindow(config.score_memory)

    def _bar(
        self, scores: SortedWindow, floor: float, factor: float, quantile: float, rank: int = 1
    ) -> float:
        learned = factor * scores.quantile(quantile, rank) if len(scores) >= MIN_LEARNED else 0.0
        return max(floor, learned) / self.config.sensitivity

    def spike_bar(self) -> float:
        c, scores = self.config, self.spike_scores
        bar = self._bar(scores, c.spike_floor, c.spike_factor, c.spike_quantile, c.spike_min_rank)
        if c.tail_gain and len(scores) >= MIN_LEARNED:
            q999 = scores.quantile(c.spike_quantile, c.spike_min_rank)
            q99 = scores.quantile(0.99)
            bar = max(bar, (q999 + c.tail_gain * (q999 - q99)) / c.sensitivity)
        return bar

    def shift_bar(self) -> float:
        c = self.config
        return self._bar(self.shift_scores, c.shift_floor, c.shift_factor, c.score_quantile)

    def level_bar(self) -> float:
        c = self.config
        return self._bar(self.level_scores, c.level_floor, c.level_factor, c.score_quantile)

    def long_bar(self, difference: float | None, spread: float, spans: Spans) -> float:
        """Infinite (never hit) until a day of past differences is known."""
        c = self.config
        # Past differences are strongly autocorrelated: a day of them before the bar is trusted.
        if difference is None or len(self.long_scores) < spans.reference:
            return math.inf
        learned = c.long_factor * self.long_scores.quantile(c.long_quantile)
        # The floor is in standard errors of a median difference of white noise with the point
        # spread: a short history of calm differences must not set a hair trigger.
        error = 1.2533 * spread * math.sqrt(1 / spans.long + 1 / spans.long_reference)
        return max(c.long_floor * error, learned) / c.sensitivity

    def cusum_bar(self) -> float:
        c, scores = self.config, self.cusum_scores
        learned = c.cusum_factor * scores.quantile(c.score_quantile) if len(scores) >= MIN_LEARNED else 0.0
        return max(c.cusum_floor, learned) / c.sensitivity
