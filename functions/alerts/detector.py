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
   timestamps, so missing rows and jitter keep the alignment; with ``time_zone`` set, "one day
   earlier" is the same local time across a change of summer time. A period is used only when it shrinks
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

This module keeps the detector itself (the order of the stages and their state); the stages live
in ``sampling.py`` (1, 2), ``seasonality.py`` (3), ``robust_z.py`` (4), ``triggers.py`` (5) and
``episodes.py`` (6), the settings in ``detector_config.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from functions.alerts.detector_config import DetectorConfig
from functions.alerts.episodes import Episode, EpisodeTracker
from functions.alerts.robust_z import directed, mean_deviation, robust_spread
from functions.alerts.sampling import INTERVAL_GAPS, Spans, Transform, median_gap, spans_for
from functions.alerts.seasonality import SlotHistory, WallClock, best_period
from functions.alerts.sorted_window import SortedWindow
from functions.alerts.triggers import Cusum, LearnedBars, LongHorizon, RunMedians
from shared.clock import iana_time_zone


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


class AnomalyDetector:
    """Feed points in time order with ``update``; each returns the decision for that point."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.n = 0
        self.last_time: datetime | None = None
        self._gaps: list[float] = []
        self._spans: Spans | None = None
        self._transform: Transform | None = None
        self._pending: list[tuple[float, float]] = []  # (seconds, raw) until the scale is chosen
        self._history = SlotHistory()
        # Set up with the scale, at the end of the warm-up.
        self._reference: SortedWindow | None = None
        self._runs: RunMedians | None = None
        self._long: LongHorizon | None = None
        self._bars = LearnedBars(self.config)
        self._cusum = Cusum(self.config)
        self._episode = EpisodeTracker(self.config)
        self._period = 0
        self._processed = 0
        self._next_season_check = 0
        self._quantum = math.inf
        self._last_raw: float | None = None
        self._mean_dev = 0.0

    @property
    def spans(self) -> Spans | None:
        return self._spans

    # -- the decision -------------------------------------------------------------------------
    def update(self, at: datetime, value: float) -> Decision:
        if self.last_time is not None and at <= self.last_time:
            raise ValueError(f"points must arrive in time order ({at} after {self.last_time})")
        if not math.isfinite(value):
            raise ValueError("points must be finite numbers")
        if self.last_time is not None and self._spans is None:
            self._gaps.append((at - self.last_time).total_seconds())
            if len(self._gaps) >= INTERVAL_GAPS:
                self._spans = spans_for(self.config, median_gap(self._gaps))
                if self.config.time_zone:
                    zone = iana_time_zone(self.config.time_zone)
                    self._history.wall_clock = WallClock(zone, self._spans.interval)
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
            self._transform = Transform.choose([v for _, v in self._pending], self._quantum)
            self._reference = SortedWindow(spans.reference)
            self._runs = RunMedians(spans.shift, spans.level)
            if spans.long:
                self._long = LongHorizon(spans.long, spans.long_reference)
            for t, v in self._pending:
                decision = self._process(self._history.slot_for(t, spans.interval), v, live=False)
            self._pending.clear()
            return decision
        return self._process(self._history.slot_for(seconds, spans.interval), value, live=True)

    def _process(self, slot: int, raw: float, live: bool) -> Decision:
        assert self._spans is not None
        assert self._transform is not None
        assert self._reference is not None
        spans, ref, history = self._spans, self._reference, self._history
        y = self._transform(raw)
        signal, offset = y, 0.0
        if self._period:
            seasonal = history.expected(slot, self._period, self.config.seasonal_periods)
            if seasonal is not None:
                signal, offset = y - seasonal, seasonal
        history.add(slot, y, keep=4 * spans.week + 2 if self.config.seasonal else spans.reference + 2)
        self._processed += 1
        decision = Decision(False, False, 0.0, raw, None, None)
        if len(ref) >= max(10, spans.reference // 4):
            decision = self._decide(signal, offset, raw, live)
        ref.push(signal)
        if self._long is not None:
            self._long.push(signal)
        if (
            self.config.seasonal
            and self._processed >= self._next_season_check
            and history.seen() >= 3 * spans.day
        ):
            self._next_season_check = self._processed + max(spans.day // 2, 24)
            self._check_seasonality()
        return decision

    def _spread(self, ref: SortedWindow, center: float) -> float:
        assert self._transform is not None
        # The mean absolute deviation only matters where the MAD collapses (mostly-flat series);
        # refreshed every few points, it is the costliest term.
        if self._processed % 8 == 0 or not self._mean_dev:
            self._mean_dev = mean_deviation(ref, center)
        return robust_spread(ref, center, self._mean_dev, self._transform, self._quantum)

    def _long_difference(self) -> float | None:
        return None if self._long is None else self._long.difference(self.config.direction)

    def _decide(self, signal: float, offset: float, raw: float, live: bool) -> Decision:
        assert self._spans is not None
        assert self._reference is not None
        assert self._transform is not None
        assert self._runs is not None
        c, spans, ref, runs, bars = self.config, self._spans, self._reference, self._runs, self._bars
        center = ref.median()
        spread = self._spread(ref, center)
        z = directed((signal - center) / spread, c.direction)
        runs.push(z)
        spike, shift, level = abs(z), abs(runs.shift_median()), abs(runs.level.median())
        spike_bar = bars.spike_bar()
        long_difference = self._long_difference()
        long_score = long_difference or 0.0
        long_bar = bars.long_bar(long_difference, spread, spans)
        shift_bar, level_bar = bars.shift_bar(), bars.level_bar()
        shift_ready = runs.shift_full() and not c.cusum_replaces_shift
        # Each trigger's strength: its score over its bar (> 1 is a hit).
        strengths = {
            "spike": spike / spike_bar,
            "shift": shift / shift_bar if shift_ready else 0.0,
            "level": level / level_bar if runs.level_full() else 0.0,
            "long": long_score / long_bar,
        }
        cusum = 0.0
        if c.cusum_k:
            # Inside an episode the sum stays at 0: it restarts when the episode ends.
            if self._episode.active:
                self._cusum.restart()
            cusum = 0.0 if self._episode.active else self._cusum.step(z)
            cusum_bar = bars.cusum_bar()
            strengths["cusum"] = cusum / cusum_bar
            if cusum > cusum_bar:
                # Page's rule: restart after a crossing, whether it pages or the cooldown holds it.
                self._cusum.restart()
        started = self._episode.step(
            max(strengths.values()),
            index=self._processed,
            cooldown=spans.cooldown,
            calm_points=spans.shift,
            may_start=live and self.n > spans.warmup,
        )
        if not self._episode.active:
            bars.spike_scores.push(spike)
            bars.shift_scores.push(shift)
            bars.level_scores.push(level)
            if long_difference is not None:
                bars.long_scores.push(long_score)
            if c.cusum_k:
                bars.cusum_scores.push(cusum)
        inverse = self._transform.inverse
        expected = inverse(center + offset)
        threshold = inverse(center + offset + math.copysign(spike_bar * spread, z or 1.0))
        triggers = tuple(name for name, over in strengths.items() if over > 1.0) if started else ()
        return Decision(self._episode.active, started, z, raw, expected, threshold, triggers)

    # -- the seasonal model -------------------------------------------------------------------
    def _check_seasonality(self) -> None:
        """Use the period (day or week) that shrinks the robust spread the most, if by a fifth."""
        assert self._spans is not None
        c = self.config
        best = best_period(self._history, self._spans, c.seasonal_periods, c.seasonal_gain)
        if best is not None and best != self._period:
            self._period = best
            self._rebuild_reference()

    def _rebuild_reference(self) -> None:
        """The model changed (a period adopted or dropped): the reference window, the long-horizon
        windows and the learned bars are rebuilt from the kept history under the new model. Bars
        learned under the old one would be wrong: before a daily period is adopted the daily peak
        scores as an anomaly every day, and those scores would hold every bar far too high."""
        assert self._spans is not None
        assert self._transform is not None
        spans, c, history = self._spans, self.config, self._history
        signals: list[float] = []
        for s in list(history.order)[-(c.score_memory + spans.reference) :]:
            if self._period:
                expected = history.expected(s, self._period, c.seasonal_periods)
                if expected is None:
                    continue
                signals.append(history.values[s] - expected)
            else:
                signals.append(history.values[s])
        window = SortedWindow(spans.reference)
        bars = self._bars = LearnedBars(c)
        self._cusum.restart()
        runs = RunMedians(spans.shift, spans.level)
        if spans.long:
            self._long = LongHorizon(spans.long, spans.long_reference)
        mean_dev = 0.0
        for i, signal in enumerate(signals):
            if len(window) >= max(10, spans.reference // 4):
                center = window.median()
                if i % 8 == 0 or not mean_dev:
                    mean_dev = mean_deviation(window, center)
                spread = robust_spread(window, center, mean_dev, self._transform, self._quantum)
                z = directed((signal - center) / spread, c.direction)
                runs.push(z)
                bars.spike_scores.push(abs(z))
                if runs.shift_full():
                    bars.shift_scores.push(abs(runs.shift_median()))
                if runs.level_full():
                    bars.level_scores.push(abs(runs.level.median()))
                long_score = self._long_difference()
                if long_score is not None:
                    bars.long_scores.push(long_score)
                if c.cusum_k:
                    cusum = self._cusum.step(z)
                    if cusum > bars.cusum_bar():
                        self._cusum.restart()  # restarts as it would have live
                    bars.cusum_scores.push(cusum)
            window.push(signal)
            if self._long is not None:
                self._long.push(signal)
        self._reference = window
        self._runs = runs


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
