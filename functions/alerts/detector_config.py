"""The anomaly detector's settings (``detector.py`` explains what each stage does with them)."""

from __future__ import annotations

from dataclasses import dataclass
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
    # The IANA zone whose local clock the daily and weekly pattern follows (None: UTC): after a
    # change of summer time "one day earlier" is then the same local time, not the same UTC time.
    time_zone: str | None = None
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
