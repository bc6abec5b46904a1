"""A streaming, label-free anomaly detector for one series.

Every decision uses only the points seen so far. Per point:

1. **Sampling interval** — the median gap of the first timestamps; every span below (reference
   window, shift run, warm-up, cooldown, seasonal period) is converted to points with it, so the
   same defaults suit 1-minute and 30-minute series.
2. **Signal** — the value itself, or, when the data has it, its residual against the same time
   one day or one week earlier (median of the last few periods, ±1 point). Seasonality is
   detected from the data: a period is used only when it shrinks the robust spread by a fifth.
3. **Robust z-score** — against the median and the MAD (scaled to sigma) of the preceding reference
   window, with floors for flat-lines and integer counts.
4. **Two triggers** — a *spike* (one point's |z|) and a *shift* (the median z of the last few
   points: level shifts, drifts, outages). Each threshold is the larger of a fixed floor and a
   multiple of a high quantile of the scores of *normal* points seen so far, so a spiky series
   raises its own bar and a calm one keeps a low one.
5. **Episodes** — consecutive anomalous points are one alert (start .. end); no new alert starts
   within the cooldown after the last one began; nothing is decided during the warm-up.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Direction = Literal["both", "up", "down"]


@dataclass(frozen=True)
class DetectorConfig:
    """Spans are in seconds; the detector turns them into points at the series' own interval."""

    direction: Direction = "both"
    sensitivity: float = 1.0
    reference_seconds: float = 86400.0
    reference_points: tuple[int, int] = (60, 400)
    shift_seconds: float = 1800.0
    shift_points: tuple[int, int] = (3, 8)
    warmup_seconds: float = 86400.0
    warmup_points: tuple[int, int] = (150, 600)
    cooldown_seconds: float = 86400.0
    cooldown_points: tuple[int, int] = (100, 600)
    spike_floor: float = 6.0
    shift_floor: float = 3.5
    score_quantile: float = 0.999
    spike_factor: float = 1.3
    shift_factor: float = 1.3
    score_memory: int = 4000
    seasonal: bool = True
    seasonal_gain: float = 0.8
    seasonal_periods: int = 4


@dataclass
class Decision:
    anomalous: bool
    started: bool
    score: float
    value: float
    expected: float | None
    threshold: float | None


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(round(value), bounds[0]), bounds[1]))


class _SortedWindow:
    """The last ``size`` values, also kept sorted (median and MAD without re-sorting)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> None:
        self.fifo.append(value)
        bisect.insort(self.sorted, value)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def __len__(self) -> int:
        return len(self.fifo)

    def median(self) -> float:
        s, n = self.sorted, len(self.sorted)
        return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])

    def quantile(self, q: float) -> float:
        s = self.sorted
        return s[min(len(s) - 1, int(q * len(s)))]

    def mad(self, center: float) -> float:
        """Median absolute deviation, by merging the two sides of the sorted list (O(n))."""
        s = self.sorted
        n = len(s)
        split = bisect.bisect_left(s, center)
        i, j = split - 1, split
        target = n // 2
        dev = 0.0
        for _ in range(target + 1):
            left = center - s[i] if i >= 0 else math.inf
            right = s[j] - center if j < n else math.inf
            if left <= right:
                dev, i = left, i - 1
            else:
                dev, j = right, j + 1
        return dev

    def mean_abs_dev(self, center: float) -> float:
        return math.fsum(abs(v - center) for v in self.fifo) / len(self.fifo)


@dataclass
class _Spans:
    interval: float
    reference: int
    shift: int
    warmup: int
    cooldown: int
    day: int
    week: int


class AnomalyDetector:
    """Feed points in time order with ``update``; each returns the decision for that point."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.n = 0
        self.last_time: datetime | None = None
        self._gaps: list[float] = []
        self._spans: _Spans | None = None
        self._values: deque[float] = deque(maxlen=40000)
        self._reference: _SortedWindow | None = None
        self._recent_z: deque[float] = deque()
        self._spike_scores = _SortedWindow(self.config.score_memory)
        self._shift_scores = _SortedWindow(self.config.score_memory)
        self._period = 0
        self._next_season_check = 0
        self._in_episode = False
        self._last_start = -(10**9)
        self._calm = 0
        self._quantum = math.inf
        self._abs_level = _SortedWindow(512)

    # -- set-up -------------------------------------------------------------------------------
    def _spans_from(self, interval: float) -> _Spans:
        c = self.config
        interval = max(interval, 1e-3)
        day = round(86400 / interval)
        return _Spans(
            interval=interval,
            reference=_clamp(c.reference_seconds / interval, c.reference_points),
            shift=_clamp(c.shift_seconds / interval, c.shift_points),
            warmup=_clamp(c.warmup_seconds / interval, c.warmup_points),
            cooldown=_clamp(c.cooldown_seconds / interval, c.cooldown_points),
            day=day,
            week=7 * day,
        )

    @property
    def spans(self) -> _Spans | None:
        return self._spans

    # -- seasonality --------------------------------------------------------------------------
    def _seasonal_expected(self, period: int) -> float | None:
        values, n = self._values, len(self._values)
        sample: list[float] = []
        for k in range(1, self.config.seasonal_periods + 1):
            base = n - k * period
            for offset in (-1, 0, 1):
                idx = base + offset
                if 0 <= idx < n:
                    sample.append(values[idx])
        if len(sample) < 6:
            return None
        sample.sort()
        return sample[len(sample) // 2]

    def _check_seasonality(self) -> None:
        """Use the period (day or week) that shrinks the robust spread the most, if by a fifth."""
        assert self._spans is not None
        spans = self._spans
        values = list(self._values)
        n = len(values)
        candidates = [p for p in (spans.day, spans.week) if p >= 12 and n >= 3 * p]
        if not candidates:
            return
        span = min(n, 4 * spans.week if spans.week * 3 <= n else 6 * spans.day)
        start = n - span
        ref = spans.reference

        def robust_spread(residuals: list[float]) -> float:
            residuals.sort()
            med = residuals[len(residuals) // 2]
            devs = sorted(abs(r - med) for r in residuals)
            return devs[len(devs) // 2] + 1e-12

        # Baseline spread: against a trailing median of the reference window (the non-seasonal model).
        stride = max(1, span // 600)
        plain: list[float] = []
        for t in range(max(start, ref), n, stride):
            window = sorted(values[t - ref : t])
            plain.append(values[t] - window[len(window) // 2])
        if len(plain) < 30:
            return
        best, best_spread = 0, robust_spread(plain)
        for period in candidates:
            res: list[float] = []
            for t in range(max(start, 2 * period + 1), n, stride):
                sample = sorted(
                    values[t - k * period + o]
                    for k in range(1, self.config.seasonal_periods + 1)
                    for o in (-1, 0, 1)
                    if t - k * period + o >= 0
                )
                res.append(values[t] - sample[len(sample) // 2])
            if len(res) < 30:
                continue
            spread = robust_spread(res)
            if spread < best_spread * self.config.seasonal_gain:
                best, best_spread = period, spread
        if best != self._period:
            self._period = best
            self._rebuild_reference()

    def _rebuild_reference(self) -> None:
        assert self._spans is not None
        window = _SortedWindow(self._spans.reference)
        values = list(self._values)
        n = len(values)
        for t in range(max(0, n - self._spans.reference), n):
            if self._period:
                sample = sorted(
                    values[t - k * self._period + o]
                    for k in range(1, self.config.seasonal_periods + 1)
                    for o in (-1, 0, 1)
                    if 0 <= t - k * self._period + o < n
                )
                if len(sample) < 6:
                    continue
                window.push(values[t] - sample[len(sample) // 2])
            else:
                window.push(values[t])
        self._reference = window

    # -- the decision -------------------------------------------------------------------------
    def update(self, at: datetime, value: float) -> Decision:
        if self.last_time is not None and at <= self.last_time:
            raise ValueError(f"points must arrive in time order ({at} after {self.last_time})")
        if not math.isfinite(value):
            raise ValueError("points must be finite numbers")
        if self.last_time is not None and self._spans is None:
            self._gaps.append((at - self.last_time).total_seconds())
            if len(self._gaps) >= 10:
                ordered = sorted(self._gaps)
                self._spans = self._spans_from(ordered[len(ordered) // 2])
                self._reference = _SortedWindow(self._spans.reference)
                self._rebuild_reference()
        self.last_time = at
        self.n += 1
        # The smallest non-zero step between distinct values: integer counts have quantum 1.
        if self._values and value != self._values[-1]:
            self._quantum = min(self._quantum, abs(value - self._values[-1]))
        self._abs_level.push(abs(value))

        signal = value
        expected_offset = 0.0
        if self._spans is not None and self._period:
            seasonal = self._seasonal_expected(self._period)
            if seasonal is not None:
                signal = value - seasonal
                expected_offset = seasonal
        self._values.append(value)
        decision = Decision(False, False, 0.0, value, None, None)
        spans, ref = self._spans, self._reference
        if spans is None or ref is None:
            return decision

        if len(ref) >= max(10, spans.reference // 4):
            decision = self._decide(signal, expected_offset, spans, ref)
        ref.push(signal)
        if self.config.seasonal and self.n >= self._next_season_check and self.n >= 3 * spans.day:
            self._next_season_check = self.n + max(spans.day // 2, 24)
            self._check_seasonality()
        return decision

    def _spread(self, ref: _SortedWindow, center: float) -> float:
        mad = 1.4826 * ref.mad(center)
        mean_dev = 1.2533 * ref.mean_abs_dev(center)
        floor = 0.0 if math.isinf(self._quantum) else 0.5 * self._quantum
        level = self._abs_level.median()
        return max(mad, 0.25 * mean_dev, floor, 0.001 * level, 1e-9)

    def _decide(self, signal: float, offset: float, spans: _Spans, ref: _SortedWindow) -> Decision:
        c = self.config
        center = ref.median()
        spread = self._spread(ref, center)
        z = (signal - center) / spread
        if c.direction == "up":
            z = max(z, 0.0)
        elif c.direction == "down":
            z = min(z, 0.0)
        self._recent_z.append(z)
        if len(self._recent_z) > spans.shift:
            self._recent_z.popleft()
        ordered = sorted(self._recent_z)
        shift_z = ordered[len(ordered) // 2]
        spike, shift = abs(z), abs(shift_z)

        def bar(scores: _SortedWindow, floor: float, factor: float) -> float:
            learned = factor * scores.quantile(c.score_quantile) if len(scores) >= 50 else 0.0
            return max(floor, learned) / c.sensitivity

        spike_bar = bar(self._spike_scores, c.spike_floor, c.spike_factor)
        shift_bar = bar(self._shift_scores, c.shift_floor, c.shift_factor)
        hit = spike > spike_bar or (len(self._recent_z) >= spans.shift and shift > shift_bar)
        started = False
        if self._in_episode:
            if spike > 0.5 * spike_bar or shift > 0.5 * shift_bar:
                self._calm = 0
            else:
                self._calm += 1
                if self._calm >= spans.shift:
                    self._in_episode = False
        elif hit and self.n > spans.warmup and self.n - self._last_start > spans.cooldown:
            self._in_episode, started, self._last_start, self._calm = True, True, self.n, 0
        if not self._in_episode:
            self._spike_scores.push(spike)
            self._shift_scores.push(shift)
        threshold = center + offset + math.copysign(spike_bar * spread, z or 1.0)
        return Decision(self._in_episode, started, z, signal + offset, center + offset, threshold)


@dataclass
class Episode:
    start: int
    end: int | None
    peak: float = 0.0
    indices: list[int] = field(default_factory=list)


def detect(times: list[datetime], values: list[float], config: DetectorConfig | None = None) -> list[Episode]:
    """Run the detector over a whole series (tuning and tests); episodes by point index."""
    detector = AnomalyDetector(config)
    episodes: list[Episode] = []
    for i, (t, v) in enumerate(zip(times, values, strict=False)):
        d = detector.update(t, v)
        if d.started:
            episodes.append(Episode(start=i, end=None))
        if episodes and episodes[-1].end is None:
            if d.anomalous:
                episodes[-1].peak = max(episodes[-1].peak, abs(d.score))
            else:
                episodes[-1].end = i
    return episodes
