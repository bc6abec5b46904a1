"""The anomaly detector on its own: behaviour that a careless change would break."""

from __future__ import annotations

import math
import random
from datetime import datetime

from functions.alerts.detector import AnomalyDetector, detect
from functions.alerts.detector_config import DetectorConfig
from tests.alerts.helpers import noise, times


def starts(ts: list[datetime], values: list[float], config: DetectorConfig | None = None) -> list[int]:
    return [e.start for e in detect(ts, values, config)]


def heavy_tailed(n: int, seed: int) -> list[float]:
    """Network-like bytes: log-normal around 1e6 with frequent bursts up to ~10x (not incidents)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = 1e6 * math.exp(rng.gauss(0, 0.5))
        if rng.random() < 0.03:
            value *= 1 + min(rng.paretovariate(1.5), 8.0)
        out.append(round(value))
    return out


def seasonal_traffic(n: int, seed: int, interval: int) -> list[float]:
    """Requests per step: a daily cycle (night at a fifth of the day peak) with Poisson-like noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hour = (i * interval / 3600) % 24
        mean = 400 * (0.2 + 0.8 * max(0.0, math.sin(math.pi * (hour - 6) / 16)))
        out.append(float(max(0, round(rng.gauss(mean, math.sqrt(mean) + 0.05 * mean)))))
    return out


def test_finds_a_persistent_level_shift_once() -> None:
    values = noise(3000, seed=31) + [v + 8 for v in noise(1500, seed=32)]  # 4 sigma, stays
    found = starts(times(4500, 300), values)
    assert len(found) == 1, found
    assert 3000 <= found[0] <= 3036  # within 3 hours of the change


def test_finds_a_spike_in_heavy_tailed_data_but_not_its_ordinary_bursts() -> None:
    values = heavy_tailed(4000, seed=41)
    values[3000] = 60 * 1e6  # 60x the level; ordinary bursts reach ~10x
    found = starts(times(4000, 300), values)
    assert 3000 in found, found
    # The 120 ordinary bursts raise the bar instead of paging at each: at most one alert in two
    # days. (Was at most 2 in the 14 days before the 12-hour cooldown and the rank-3 spike bar,
    # which the real NAB series asked for; the alerts README shows the trade.)
    assert len(found) <= 7, found


def test_quiet_on_clean_seasonal_traffic() -> None:
    # At 30-minute steps the 3-hour level trigger runs over 8 points; since the bars are relearned
    # under the seasonal model (no longer inflated by the pre-seasonal scores) it pages twice in
    # 40 days on this clean series. Was: no alert at either interval.
    for interval, days, most in ((300, 14, 0), (1800, 40, 2)):
        n = days * 86400 // interval
        found = starts(times(n, interval), seasonal_traffic(n, seed=interval, interval=interval))
        assert len(found) <= most, (interval, found)


def test_seasonal_dip_found_with_rows_missing() -> None:
    interval, n = 600, 14 * 144
    values = seasonal_traffic(n, seed=5, interval=interval)
    onset = 10 * 144 + 80  # mid-day on day 10: traffic stops for 3 hours
    for i in range(onset, onset + 18):
        values[i] = 0.0
    rng = random.Random(6)
    keep = [i for i in range(n) if i == onset or rng.random() > 0.03]  # 3% of rows lost
    ts, kept = times(n, interval), [values[i] for i in keep]
    found = starts([ts[i] for i in keep], kept)
    position = keep.index(onset)
    assert any(position <= s <= position + 12 for s in found), (position, found)


def test_log_scale_only_for_skewed_positive_data() -> None:
    skewed, symmetric = AnomalyDetector(), AnomalyDetector()
    for t, a, b in zip(times(400, 300), heavy_tailed(400, seed=1), noise(400, seed=2), strict=True):
        skewed.update(t, a)
        symmetric.update(t, b)
    assert skewed._transform is not None
    assert skewed._transform.offset is not None
    assert symmetric._transform is not None
    assert symmetric._transform.offset is None


def test_no_lookahead_decisions_identical_on_a_truncated_file() -> None:
    values = heavy_tailed(3000, seed=51)
    for i in range(2000, 3000):
        values[i] *= 4  # a surge, so the cut lands inside an episode
    ts = times(3000, 300)
    full, cut = AnomalyDetector(), AnomalyDetector()
    whole = [full.update(t, v) for t, v in zip(ts, values, strict=True)]
    for end in (2005, 2400):
        cut = AnomalyDetector()
        part = [cut.update(t, v) for t, v in zip(ts[:end], values[:end], strict=True)]
        assert part == whole[:end]
    assert any(d.started for d in whole[2000:2100])


def test_cooldown_one_alert_per_episode() -> None:
    values = noise(3000, seed=61)
    for i in range(2000, 2012):
        values[i] += 40  # one hour of trouble: one alert, not twelve
    assert starts(times(3000, 300), values) == [2000]


def test_spike_bar_rises_with_a_heavy_tail_only() -> None:
    """The tail-aware bar (99.9th percentile + its gap to the 99th) binds on heavy-tailed scores
    and leaves a light-tailed series' bar where the quantile rule puts it."""
    rng = random.Random(71)
    heavy = [
        1e6 * math.exp(rng.gauss(0, 0.3)) * (1 + (rng.paretovariate(1.1) if rng.random() < 0.02 else 0))
        for _ in range(4000)
    ]
    ts = times(4000, 300)
    for values, binds in ((heavy, True), (noise(4000, seed=72), False)):
        with_tail, without = AnomalyDetector(), AnomalyDetector(DetectorConfig(tail_gain=0.0))
        a = [with_tail.update(t, v).threshold for t, v in zip(ts, values, strict=True)]
        b = [without.update(t, v).threshold for t, v in zip(ts, values, strict=True)]
        tail = [(x, y) for x, y in zip(a[-500:], b[-500:], strict=True) if x is not None and y is not None]
        assert tail
        if binds:
            # The two runs may alert differently (and so learn from different points): compare the
            # typical bar, not point by point.
            assert sorted(x / y for x, y in tail)[len(tail) // 2] > 1.05
        else:
            assert all(x == y for x, y in tail)


def test_long_horizon_finds_a_small_sustained_shift_in_heavy_tailed_data() -> None:
    # x1.6 in log-normal traffic with sigma 0.5 (under one point-level sigma, plus bursts): no single
    # point and no 3-hour median stands out, but the median of the last hours against the days
    # before does. Without the long-horizon trigger this shift goes unseen.
    ts = times(4000, 300)
    for seed in (1, 2, 7):
        calm = heavy_tailed(4000, seed)
        shifted = [v * (1.6 if i >= 2500 else 1.0) for i, v in enumerate(calm)]
        found = starts(ts, shifted)
        assert len(found) == 1, (seed, found)
        assert 2500 <= found[0] < 2600, (seed, found)
        assert starts(ts, shifted, DetectorConfig(long_seconds=0)) == []
        assert starts(ts, calm) == []  # the same data without the shift stays quiet


def test_long_horizon_quiet_on_clean_noise() -> None:
    # Two months at 30 min, ten days at 5 min: the long windows are full and the bar is learned.
    for seed, interval in ((31, 300), (32, 600), (33, 1800)):
        assert starts(times(3000, interval), noise(3000, seed=seed)) == []


def test_a_much_stronger_anomaly_breaks_through_the_cooldown() -> None:
    values = noise(3000, seed=61)
    values[2000] += 14  # a blip just over the bar: an alert, most likely a false one
    for i in range(2100, 2112):
        values[i] += 60  # two hours later, an outage-sized change inside the one-day cooldown
    ts = times(3000, 300)
    assert starts(ts, values) == [2000, 2100]
    # Without escalation the cooldown would have swallowed the real incident.
    assert starts(ts, values, DetectorConfig(escalation=0)) == [2000]


def test_an_episode_that_merely_recurs_stays_in_its_cooldown() -> None:
    values = noise(3000, seed=61)
    for start in (2000, 2100):
        for i in range(start, start + 6):
            values[i] += 40  # the same trouble twice: it does not page twice within the cooldown
    assert starts(times(3000, 300), values) == [2000]


def started_triggers(ts: list[datetime], values: list[float]) -> list[tuple[str, ...]]:
    detector = AnomalyDetector()
    return [d.triggers for t, v in zip(ts, values, strict=True) if (d := detector.update(t, v)).started]


def test_a_start_names_the_triggers_that_crossed_their_bars() -> None:
    ts = times(3000, 300)
    spiky = noise(3000, seed=61)
    spiky[2000] += 40  # one point: only the spike trigger can see it
    assert started_triggers(ts, spiky) == [("spike",)]
    shifted = noise(3000, seed=31)
    for i in range(2000, 3000):
        shifted[i] += 8  # 4 sigma and staying: the run triggers, no single point stands out
    (first,) = started_triggers(ts, shifted)
    assert first
    assert "spike" not in first


def test_cooldown_is_a_span_of_time_with_a_floor_in_points() -> None:
    """12 h of cooldown is 144 points at 5-minute steps, but at hourly steps the floor of 100
    points binds (4 days): the same recurring trouble 50 hours later pages again only on the
    finer series (functions/alerts/README.md, ninth round)."""
    hourly = noise(1000, seed=71)
    five_minute = noise(3000, seed=71)
    for series, first, second in ((hourly, 600, 650), (five_minute, 2000, 2200)):
        for at in (first, second):
            for i in range(at, at + 3):
                series[i] += 40
    assert starts(times(1000, 3600), hourly) == [600]
    assert starts(times(3000, 300), five_minute) == [2000, 2200]
    # A floor of 36 points lets the hourly series page again after 36 hours.
    assert starts(times(1000, 3600), hourly, DetectorConfig(cooldown_points=(36, 600))) == [600, 650]


def test_cusum_sees_a_small_sustained_shift_sooner_than_the_medians() -> None:
    """A 1.5-sigma shift is under the shift trigger's floor (3.5) and only just at the level
    trigger's (1.5): the medians catch it late. Page's CUSUM of the z-scores (reference value 0.5)
    adds about 1 per point and crosses its bar within a few (functions/alerts/README.md, eleventh
    round)."""
    ts = times(4500, 300)
    values = noise(3000, seed=3) + [v + 3.0 for v in noise(1500, seed=103)]  # sigma 2: +1.5 sigma
    medians = starts(ts, values)
    cusum = starts(ts, values, DetectorConfig(cusum_k=0.5))
    assert medians, medians
    assert cusum, cusum
    assert 3000 <= cusum[0] <= 3015, cusum  # within 75 minutes of the change
    assert cusum[0] <= medians[0] - 10, (medians, cusum)
    assert all(s >= 3000 for s in cusum), cusum  # quiet on the noise before it
    # In the median-of-run trigger's place, the same start.
    assert starts(ts, values, DetectorConfig(cusum_k=0.5, cusum_replaces_shift=True))[0] == cusum[0]


def test_cusum_decisions_are_causal_on_a_truncated_file() -> None:
    config = DetectorConfig(cusum_k=0.5)
    values = heavy_tailed(3000, seed=51)
    for i in range(2000, 3000):
        values[i] *= 4
    ts = times(3000, 300)
    full = AnomalyDetector(config)
    whole = [full.update(t, v) for t, v in zip(ts, values, strict=True)]
    for end in (1200, 2005, 2400):
        cut = AnomalyDetector(config)
        assert [cut.update(t, v) for t, v in zip(ts[:end], values[:end], strict=True)] == whole[:end]
    assert any(d.started for d in whole[2000:2100])
