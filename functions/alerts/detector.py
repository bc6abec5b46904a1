"""A streaming, label-free anomaly detector for one series.

Every decision uses only the points seen so far. Per point:

1. **Sampling interval** — the median gap of the first timestamps; every span below (reference
   window, shift and level runs, warm-up, cooldown, seasonal period) is converted to points with
   it, so the same defaults suit 1-minute and 30-minute series.
2. **Scale** — chosen once at the end of the warm-up: log(x + c) for positive, right-skewed data
   (bytes, counts, latencies; c = half the median or the quantum), the raw value otherwise. The
   warm-up points are then scored (without alerting) so the learned bars start full.
3. **Signal** — the value itself, or, when the data has it, its residual against the same time
   slot one day or one week earlier (median of the last few periods, ±1 slot). Slots come from the
   timestamps, so missing rows and jitter keep the alignment. A period is used only when it shrinks
   the 90th percentile of the residual deviations by a fifth. When the model changes (a period
   adopted or dropped) the reference and the learned bars are rebuilt from the kept history under
   the new model.
4. **Robust z-score** — against the median and the MAD (scaled to sigma) of the preceding reference
   window, with floors for flat-lines and integer counts.
5. **Three triggers** — a *spike* (one point's |z|), a *shift* (the median z of the last ~30 min)
   and a *level* (the median z of the last ~3 h: surges, ramps and outages hidden in heavy tails).
   Each bar is the larger of a fixed floor and a multiple of a high quantile of the scores of
   *normal* points seen so far (99.9th for spikes, 99.5th for the smoother medians), so a spiky
   series raises its own bar and a calm one keeps a low one; the spike bar also grows with the
   gap between the 99th and the 99.9th percentile (a heavy tail).
6. **Episodes** — consecutive anomalous points are one alert (start .. end); no new alert starts
   within the cooldown after the last one began, unless it is much stronger (score over bar) than
   the strongest point of the last episode: a real outage right after a weak false alert still
   pages. Nothing is decided during the warm-up.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
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
    cooldown_seconds: float = 43200.0
    cooldown_points: tuple[int, int] = (100, 600)
    spike_floor: float = 6.0
    shift_floor: float = 3.5
    # A sustained change too small to stand out point by point (a surge inside heavy-tailed
    # traffic, a ramp): the median z over a few hours.
    level_seconds: float = 3 * 3600.0
    level_points: tuple[int, int] = (8, 36)
    level_floor: float = 1.5
    level_factor: float = 1.2
    # Spikes are single points, so their bar sits at the very end of the score distribution;
    # shift and level scores are medians (smooth), a lower quantile holds them.
    spike_quantile: float = 0.999
    score_quantile: float = 0.995
    spike_factor: float = 1.3
    shift_factor: float = 1.7
    score_memory: int = 4000
    seasonal: bool = True
    seasonal_gain: float = 0.8
    seasonal_periods: int = 4
    # Heavy tails: the spike bar is also at least the 99.9th percentile of normal spike scores plus
    # tail_gain x its distance from the 99th. A light tail has the two close together (the bar
    # stays at spike_factor x the 99.9th); a heavy one, whose 99.9th rests on a handful of bursts,
    # has a long gap, and the next burst would overshoot the few seen so far.
    tail_gain: float = 1.0
    # The spike bar's quantile is never above the 3rd largest normal score: on a short history
    # (hourly series, the first days of any) the 99.9th percentile is the maximum, which one
    # stray point sets, and every later spike had to beat it by the tail gap too.
    spike_min_rank: int = 3
    # Long-horizon shift: the median of the last hours against the median of the days before them
    # (signals are seasonal residuals when a period is in use, so the two are aligned). A shift of
    # x1.6-2 in noisy traffic is under one point-level sigma and no 3-hour median clears its bar,
    # but the median of ~100 points moves by many times its own wander. So its scale is not the
    # point spread but the spread of that very difference over the series' own history: the bar
    # is a multiple of a high quantile of past |difference| (normal points only), at least
    # long_floor standard errors of such a difference in white noise. long_seconds = 0 turns it off.
    long_seconds: float = 8 * 3600.0
    long_points: tuple[int, int] = (12, 96)
    long_reference_seconds: float = 3 * 86400.0
    long_reference_points: tuple[int, int] = (72, 864)
    long_floor: float = 4.0
    long_factor: float = 1.2
    long_quantile: float = 0.995
    # Escalation: within the cooldown, an anomaly whose strength (score over bar) exceeds
    # escalation x the strongest point of the last episode starts a new alert. 0 = off.
    escalation: float = 1.5
    escalation_floor: float = 1.5
    # CUSUM (Page's two-sided cumulative sum) of the z-scores clipped to +-cusum_clip, less the
    # reference value cusum_k per point: a sustained shift of d sigma adds d - k per point, so it
    # is seen sooner than by a median over a run at the same false-alarm rate (Lorden). Its bar is
    # learned like the others' (cusum_factor x the score quantile of normal points, at least
    # cusum_floor); it restarts at 0 after each crossing and stays at 0 inside an episode (it holds
    # none: a lasting shift would keep it growing). cusum_k = 0 turns it off; cusum_replaces_shift
    # drops the median-of-run trigger.
    cusum_k: float = 0.0
    cusum_clip: float = 4.0
    cusum_floor: float = 5.0
    cusum_factor: float = 1.5
    cusum_replaces_shift: bool = False


@dataclass
class Decision:
    anomalous: bool
    started: bool
    score: float
    value: float
    expected: float | None
    threshold: float | None
    # At the start of an episode: the triggers over their bars ("spike", "shift", "level", "long",
    # "cusum").
    triggers: tuple[str, ...] = ()


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(round(value), bounds[0]), bounds[1]))


class _SortedWindow:
    """The last ``size`` values, also kept sorted (median and MAD without re-sorting)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> float | None:
        """Add a value; returns the one that fell out of the window, if any."""
        self.fifo.append(value)
        bisect.insort(self.sorted, value)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            return old
        return None

    def __len__(self) -> int:
        return len(self.fifo)

    def median(self) -> float:
        s, n = self.sorted, len(self.sorted)
        return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])

    def quantile(self, q: float, min_rank: int = 1) -> float:
        """The q-quantile, but never above the ``min_rank``-th largest value: with few values a
        high quantile is the maximum, which one stray point sets."""
        s = self.sorted
        return s[max(0, min(len(s) - 1, int(q * len(s)), len(s) - min_rank))]

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
    level: int
    warmup: int
    cooldown: int
    day: int
    week: int
    long: int
    long_reference: int


class _Transform:
    """Log scale for positive right-skewed data (bytes, counts, latencies): a burst of x10 and a
    drop to a tenth weigh the same, and heavy tails stop dominating the spread. Chosen once, from
    the warm-up points."""

    def __init__(self, offset: float | None) -> None:
        self.offset = offset  # None: identity

    @classmethod
    def choose(cls, values: list[float], quantum: float) -> _Transform:
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


class AnomalyDetector:
    """Feed points in time order with ``update``; each returns the decision for that point."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.n = 0
        self.last_time: datetime | None = None
        self._gaps: list[float] = []
        self._spans: _Spans | None = None
        self._transform: _Transform | None = None
        self._pending: list[tuple[float, float]] = []  # (seconds, raw) until the scale is chosen
        # Transformed values by time slot (timestamp / interval): seasonal look-ups stay aligned
        # when rows are missing or timestamps jitter, which index arithmetic would not.
        self._slots: dict[int, float] = {}
        self._slot_order: deque[int] = deque()
        self._reference: _SortedWindow | None = None
        self._recent_z: deque[float] = deque()
        self._level_z: _SortedWindow | None = None
        self._spike_scores = _SortedWindow(self.config.score_memory)
        self._shift_scores = _SortedWindow(self.config.score_memory)
        self._level_scores = _SortedWindow(self.config.score_memory)
        self._long_scores = _SortedWindow(self.config.score_memory)
        self._cusum_scores = _SortedWindow(self.config.score_memory)
        self._cusum_up = 0.0
        self._cusum_down = 0.0
        self._long_recent: _SortedWindow | None = None
        self._long_reference: _SortedWindow | None = None
        self._period = 0
        self._processed = 0
        self._next_season_check = 0
        self._in_episode = False
        self._last_start = -(10**9)
        self._calm = 0
        self._episode_peak = 0.0
        self._quantum = math.inf
        self._last_raw: float | None = None
        self._mean_dev = 0.0

    # -- set-up -------------------------------------------------------------------------------
    def _spans_from(self, interval: float) -> _Spans:
        c = self.config
        interval = max(interval, 1e-3)
        day = round(86400 / interval)
        return _Spans(
            interval=interval,
            reference=_clamp(c.reference_seconds / interval, c.reference_points),
            shift=_clamp(c.shift_seconds / interval, c.shift_points),
            level=_clamp(c.level_seconds / interval, c.level_points),
            warmup=_clamp(c.warmup_seconds / interval, c.warmup_points),
            cooldown=_clamp(c.cooldown_seconds / interval, c.cooldown_points),
            day=day,
            week=7 * day,
            long=_clamp(c.long_seconds / interval, c.long_points) if c.long_seconds else 0,
            long_reference=_clamp(c.long_reference_seconds / interval, c.long_reference_points),
        )

    @property
    def spans(self) -> _Spans | None:
        return self._spans

    # -- seasonality --------------------------------------------------------------------------
    def _seasonal_expected(self, slot: int, period: int) -> float | None:
        slots = self._slots
        sample = [
            slots[s]
            for k in range(1, self.config.seasonal_periods + 1)
            for o in (-1, 0, 1)
            if (s := slot - k * period + o) in slots
        ]
        if len(sample) < 6:
            return None
        sample.sort()
        return sample[len(sample) // 2]

    def _check_seasonality(self) -> None:
        """Use the period (day or week) that shrinks the robust spread the most, if by a fifth."""
        assert self._spans is not None
        spans = self._spans
        order = list(self._slot_order)
        n = len(order)
        candidates = [p for p in (spans.day, spans.week) if p >= 12 and order[-1] - order[0] >= 3 * p]
        if not candidates:
            return
        span = 4 * spans.week if order[-1] - order[0] >= 3 * spans.week else 6 * spans.day
        recent = [s for s in order if s > order[-1] - span]
        ref = spans.reference
        slots = self._slots

        def robust_spread(residuals: list[float]) -> float:
            # The 90th percentile of the deviations, not their median: a narrow daily peak covers
            # well under half of the day, and the median alone would not see it.
            residuals.sort()
            med = residuals[len(residuals) // 2]
            devs = sorted(abs(r - med) for r in residuals)
            return devs[(9 * len(devs)) // 10] + 1e-12

        # Baseline spread: against a trailing median of the reference window (the non-seasonal model).
        stride = max(1, len(recent) // 600)
        plain: list[float] = []
        first = max(n - len(recent), ref)
        window = _SortedWindow(ref)  # slides over the span: one insertion per point, no re-sorting
        for s in order[first - ref : first]:
            window.push(slots[s])
        for i in range(first, n):
            if (i - first) % stride == 0:
                plain.append(slots[order[i]] - window.sorted[len(window) // 2])
            window.push(slots[order[i]])
        if len(plain) < 30:
            return
        best, best_spread = 0, robust_spread(plain)
        for period in candidates:
            res: list[float] = []
            for s in recent[::stride]:
                expected = self._seasonal_expected(s, period)
                if expected is not None:
                    res.append(slots[s] - expected)
            if len(res) < 30:
                continue
            spread = robust_spread(res)
            if spread < best_spread * self.config.seasonal_gain:
                best, best_spread = period, spread
        if best != self._period:
            self._period = best
            self._rebuild_reference()

    def _rebuild_reference(self) -> None:
        """The model changed (a period adopted or dropped): the reference window, the long-horizon
        windows and the learned bars are rebuilt from the kept history under the new model. Bars
        learned under the old one would be wrong: before a daily period is adopted the daily peak
        scores as an anomaly every day, and those scores would hold every bar far too high."""
        assert self._spans is not None
        spans, c = self._spans, self.config
        history: list[float] = []
        for s in list(self._slot_order)[-(c.score_memory + spans.reference) :]:
            if self._period:
                expected = self._seasonal_expected(s, self._period)
                if expected is None:
                    continue
                history.append(self._slots[s] - expected)
            else:
                history.append(self._slots[s])
        window = _SortedWindow(spans.reference)
        self._spike_scores = _SortedWindow(c.score_memory)
        self._shift_scores = _SortedWindow(c.score_memory)
        self._level_scores = _SortedWindow(c.score_memory)
        self._long_scores = _SortedWindow(c.score_memory)
        self._cusum_scores = _SortedWindow(c.score_memory)
        self._cusum_up = self._cusum_down = 0.0
        recent_z: deque[float] = deque(maxlen=spans.shift)
        level_z = _SortedWindow(spans.level)
        if spans.long:
            self._long_recent = _SortedWindow(spans.long)
            self._long_reference = _SortedWindow(spans.long_reference)
        mean_dev = 0.0
        for i, signal in enumerate(history):
            if len(window) >= max(10, spans.reference // 4):
                center = window.median()
                if i % 8 == 0 or not mean_dev:
                    mean_dev = 1.2533 * window.mean_abs_dev(center)
                z = self._directed((signal - center) / self._spread_of(window, center, mean_dev))
                recent_z.append(z)
                level_z.push(z)
                self._spike_scores.push(abs(z))
                if len(recent_z) >= spans.shift:
                    self._shift_scores.push(abs(sorted(recent_z)[len(recent_z) // 2]))
                if len(level_z) >= spans.level:
                    self._level_scores.push(abs(level_z.median()))
                long_score = self._long_difference()
                if long_score is not None:
                    self._long_scores.push(long_score)
                if c.cusum_k:
                    cusum = self._cusum_step(z)
                    if cusum > self._cusum_bar():
                        self._cusum_up = self._cusum_down = 0.0  # restarts as it would have live
                    self._cusum_scores.push(cusum)
            window.push(signal)
            if spans.long:
                self._push_long(signal)
        self._reference = window
        self._recent_z = deque(recent_z)
        self._level_z = level_z if len(level_z) else None

    def _push_long(self, signal: float) -> None:
        assert self._long_recent is not None
        assert self._long_reference is not None
        left = self._long_recent.push(signal)
        if left is not None:
            self._long_reference.push(left)

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
        self.last_time = at
        self.n += 1
        # The smallest non-zero step between distinct values: integer counts have quantum 1.
        if self._last_raw is not None and value != self._last_raw:
            self._quantum = min(self._quantum, abs(value - self._last_raw))
        self._last_raw = value
        seconds = at.timestamp()
        spans = self._spans
        if spans is None or self._transform is None:
            self._pending.append((seconds, value))
            if spans is None or self.n < spans.warmup:
                return Decision(False, False, 0.0, value, None, None)
            # Warm-up done: choose the scale, then learn from the warm-up points as if they had
            # been scored all along (no alerts: the warm-up decides nothing).
            self._transform = _Transform.choose([v for _, v in self._pending], self._quantum)
            self._reference = _SortedWindow(spans.reference)
            if spans.long:
                self._long_recent = _SortedWindow(spans.long)
                self._long_reference = _SortedWindow(spans.long_reference)
            for t, v in self._pending:
                decision = self._process(self._slot(t), v, live=False)
            self._pending.clear()
            return decision
        return self._process(self._slot(seconds), value, live=True)

    def _slot(self, seconds: float) -> int:
        assert self._spans is not None
        slot = round(seconds / self._spans.interval)
        if self._slot_order and slot <= self._slot_order[-1]:
            slot = self._slot_order[-1] + 1  # two rows in one interval: keep both, in order
        return slot

    def _process(self, slot: int, raw: float, live: bool) -> Decision:
        assert self._spans is not None
        assert self._transform is not None
        assert self._reference is not None
        spans, ref = self._spans, self._reference
        y = self._transform(raw)
        signal, offset = y, 0.0
        if self._period:
            seasonal = self._seasonal_expected(slot, self._period)
            if seasonal is not None:
                signal, offset = y - seasonal, seasonal
        self._slots[slot] = y
        self._slot_order.append(slot)
        keep = 4 * spans.week + 2 if self.config.seasonal else spans.reference + 2
        while len(self._slot_order) > keep:
            del self._slots[self._slot_order.popleft()]
        self._processed += 1
        decision = Decision(False, False, 0.0, raw, None, None)
        if len(ref) >= max(10, spans.reference // 4):
            decision = self._decide(signal, offset, raw, live)
        ref.push(signal)
        if spans.long:
            self._push_long(signal)
        seen = self._slot_order[-1] - self._slot_order[0]
        if self.config.seasonal and self._processed >= self._next_season_check and seen >= 3 * spans.day:
            self._next_season_check = self._processed + max(spans.day // 2, 24)
            self._check_seasonality()
        return decision

    def _spread(self, ref: _SortedWindow, center: float) -> float:
        # The mean absolute deviation only matters where the MAD collapses (mostly-flat series);
        # refreshed every few points, it is the costliest term.
        if self._processed % 8 == 0 or not self._mean_dev:
            self._mean_dev = 1.2533 * ref.mean_abs_dev(center)
        return self._spread_of(ref, center, self._mean_dev)

    def _spread_of(self, ref: _SortedWindow, center: float, mean_dev: float) -> float:
        assert self._transform is not None
        mad = 1.4826 * ref.mad(center)
        transform = self._transform
        if transform.offset is None:
            floor = 0.0 if math.isinf(self._quantum) else 0.5 * self._quantum
            level = 0.001 * abs(center)
        else:
            # A quantum in raw units is a step of quantum / (x + offset) on the log scale.
            base = max(transform.inverse(center), 0.0) + transform.offset
            floor = 0.0 if math.isinf(self._quantum) else 0.5 * self._quantum / base
            level = 0.001
        return max(mad, 0.25 * mean_dev, floor, level, 1e-9)

    def _directed(self, value: float) -> float:
        if self.config.direction == "up":
            return max(value, 0.0)
        if self.config.direction == "down":
            return min(value, 0.0)
        return value

    def _cusum_step(self, z: float) -> float:
        """One step of the two-sided CUSUM; returns its score, the larger side."""
        c = self.config
        clipped = min(max(z, -c.cusum_clip), c.cusum_clip)
        self._cusum_up = max(0.0, self._cusum_up + clipped - c.cusum_k)
        self._cusum_down = max(0.0, self._cusum_down - clipped - c.cusum_k)
        return max(self._cusum_up, self._cusum_down)

    def _cusum_bar(self) -> float:
        c, scores = self.config, self._cusum_scores
        learned = c.cusum_factor * scores.quantile(c.score_quantile) if len(scores) >= 50 else 0.0
        return max(c.cusum_floor, learned) / c.sensitivity

    def _long_difference(self) -> float | None:
        """|median of the last hours - median of the days before|, once the longer one is half full."""
        recent, longer = self._long_recent, self._long_reference
        if recent is None or longer is None or len(longer) < self._spans.long_reference // 2:  # type: ignore[union-attr]
            return None
        return abs(self._directed(recent.median() - longer.median()))

    def _decide(self, signal: float, offset: float, raw: float, live: bool) -> Decision:
        assert self._spans is not None
        assert self._reference is not None
        assert self._transform is not None
        c, spans, ref = self.config, self._spans, self._reference
        center = ref.median()
        spread = self._spread(ref, center)
        z = self._directed((signal - center) / spread)
        self._recent_z.append(z)
        if len(self._recent_z) > spans.shift:
            self._recent_z.popleft()
        ordered = sorted(self._recent_z)
        shift_z = ordered[len(ordered) // 2]
        if self._level_z is None:
            self._level_z = _SortedWindow(spans.level)
        self._level_z.push(z)
        spike, shift, level = abs(z), abs(shift_z), abs(self._level_z.median())

        def bar(scores: _SortedWindow, floor: float, factor: float, quantile: float, rank: int = 1) -> float:
            learned = factor * scores.quantile(quantile, rank) if len(scores) >= 50 else 0.0
            return max(floor, learned) / c.sensitivity

        spike_bar = bar(self._spike_scores, c.spike_floor, c.spike_factor, c.spike_quantile, c.spike_min_rank)
        if c.tail_gain and len(self._spike_scores) >= 50:
            q999 = self._spike_scores.quantile(c.spike_quantile, c.spike_min_rank)
            q99 = self._spike_scores.quantile(0.99)
            spike_bar = max(spike_bar, (q999 + c.tail_gain * (q999 - q99)) / c.sensitivity)
        long_bar = math.inf
        long_difference = self._long_difference()
        long_score = long_difference or 0.0
        # Past differences are strongly autocorrelated: a day of them before the bar is trusted.
        if long_difference is not None and len(self._long_scores) >= spans.reference:
            learned = c.long_factor * self._long_scores.quantile(c.long_quantile)
            # The floor is in standard errors of a median difference of white noise with the
            # point spread: a short history of calm differences must not set a hair trigger.
            error = 1.2533 * spread * math.sqrt(1 / spans.long + 1 / spans.long_reference)
            long_bar = max(c.long_floor * error, learned) / c.sensitivity
        shift_bar = bar(self._shift_scores, c.shift_floor, c.shift_factor, c.score_quantile)
        level_bar = bar(self._level_scores, c.level_floor, c.level_factor, c.score_quantile)
        shift_ready = len(self._recent_z) >= spans.shift and not c.cusum_replaces_shift
        level_ready = len(self._level_z) >= spans.level
        # Each trigger's strength: its score over its bar (> 1 is a hit).
        strengths = {
            "spike": spike / spike_bar,
            "shift": shift / shift_bar if shift_ready else 0.0,
            "level": level / level_bar if level_ready else 0.0,
            "long": long_score / long_bar,
        }
        cusum = 0.0
        if c.cusum_k:
            # Inside an episode the sum stays at 0: it restarts when the episode ends.
            if self._in_episode:
                self._cusum_up = self._cusum_down = 0.0
            cusum = 0.0 if self._in_episode else self._cusum_step(z)
            cusum_bar = self._cusum_bar()
            strengths["cusum"] = cusum / cusum_bar
            if cusum > cusum_bar:
                # Page's rule: restart after a crossing, whether it pages or the cooldown holds it.
                self._cusum_up = self._cusum_down = 0.0
        strength = max(strengths.values())
        hit = strength > 1.0
        started = False
        cooled = self._processed - self._last_start > spans.cooldown
        escalated = (
            c.escalation > 0
            and not cooled
            and strength > max(c.escalation_floor, c.escalation * self._episode_peak)
        )
        if self._in_episode:
            self._episode_peak = max(self._episode_peak, strength)
            # Any trigger above half its bar holds the episode; a long shift so holds it until the
            # longer reference absorbs it (days): it pages once and its points stay out of the bars.
            if strength > 0.5:
                self._calm = 0
            else:
                self._calm += 1
                if self._calm >= spans.shift:
                    self._in_episode = False
        elif live and hit and self.n > spans.warmup and (cooled or escalated):
            self._in_episode, started, self._last_start, self._calm = True, True, self._processed, 0
            self._episode_peak = strength
        if not self._in_episode:
            self._spike_scores.push(spike)
            self._shift_scores.push(shift)
            self._level_scores.push(level)
            if long_difference is not None:
                self._long_scores.push(long_score)
            if c.cusum_k:
                self._cusum_scores.push(cusum)
        inverse = self._transform.inverse
        expected = inverse(center + offset)
        threshold = inverse(center + offset + math.copysign(spike_bar * spread, z or 1.0))
        triggers = tuple(name for name, over in strengths.items() if over > 1.0) if started else ()
        return Decision(self._in_episode, started, z, raw, expected, threshold, triggers)


@dataclass
class Episode:
    start: int
    end: int | None


def detect(times: list[datetime], values: list[float], config: DetectorConfig | None = None) -> list[Episode]:
    """Run the detector over a whole series (tuning and tests); episodes by point index."""
    detector = AnomalyDetector(config)
    episodes: list[Episode] = []
    for i, (t, v) in enumerate(zip(times, values, strict=False)):
        d = detector.update(t, v)
        if d.started:
            episodes.append(Episode(start=i, end=None))
        if episodes and episodes[-1].end is None and not d.anomalous:
            episodes[-1].end = i
    return episodes
