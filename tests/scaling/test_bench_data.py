"""The scaling bench's real day-night data set (NAB realTraffic occupancy, bench/scaling.py): what
it reads, how it becomes request load, where scoring starts, and the scoring of a short replay."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bench.scaling import (
    CAPACITY,
    TRAFFIC_RATE_MINUTES,
    TWEET_P99_INSTANCES,
    Case,
    evaluate,
    reactive_only,
    static_p99,
    traffic_cases,
)
from tests.nab_corpus import needs_corpus

CHICAGO = ZoneInfo("America/Chicago")


def five_minute_changes(case: Case) -> float:
    """The median |log| change of the load over 5 minutes."""
    values = dict(zip(case.trace.minutes, case.trace.requests, strict=True))
    changes = [
        abs(math.log(value / before))
        for minute, value in values.items()
        if value > 0 and (before := values.get(minute - timedelta(minutes=5)) or 0) > 0
    ]
    return statistics.median(changes)


@needs_corpus
def test_traffic_is_two_detectors_scored_after_the_hole_at_a_p99_of_20_instances() -> None:
    cases = traffic_cases()
    assert [c.name for c in cases] == ["traffic-6005", "traffic-t4013"]
    for case in cases:
        trace = case.trace
        assert trace.zone == CHICAGO
        # Scoring starts at the first row after the 84-hour hole (local stamps in Chicago).
        assert case.scored_from.astimezone(CHICAGO).replace(tzinfo=None) == datetime(2015, 9, 8, 10, 44)
        warm = [m for m in trace.minutes if m < case.scored_from]
        assert 3.3 < (warm[-1] - warm[0]) / timedelta(days=1) < 3.6
        scored_days = (trace.minutes[-1] - case.scored_from) / timedelta(days=1)
        assert 9.0 < scored_days < 9.5
        ordered = sorted(trace.requests)
        assert math.ceil(ordered[int(0.99 * (len(ordered) - 1))] / CAPACITY - 1e-9) == TWEET_P99_INSTANCES
        # A real day-night cycle: the rush hours' load is several times the night's.
        by_hour: dict[int, list[float]] = {}
        for minute, value in zip(trace.minutes, trace.requests, strict=True):
            by_hour.setdefault(minute.astimezone(CHICAGO).hour, []).append(value)
        night = statistics.mean(by_hour[2])
        rush = max(statistics.mean(by_hour[h]) for h in (6, 7, 8))
        assert rush > 3 * night


@needs_corpus
def test_the_rate_version_keeps_the_rows_and_the_shape_without_the_detector_noise() -> None:
    raw, rate = traffic_cases(), traffic_cases(rate_minutes=TRAFFIC_RATE_MINUTES)
    for detector, counted in zip(raw, rate, strict=True):
        assert counted.data == "traffic-rate"
        assert counted.trace.minutes == detector.trace.minutes  # holes stay holes
        assert counted.scored_from == detector.scored_from
        # The same load on average, hour by hour, with a fraction of the 5-minute jumps.
        assert sum(counted.trace.requests) == pytest.approx(sum(detector.trace.requests), rel=0.02)
        assert five_minute_changes(detector) > 0.3
        assert five_minute_changes(counted) < 0.1
    # Deterministic: the same counts on every run.
    again = traffic_cases(rate_minutes=TRAFFIC_RATE_MINUTES)
    assert [c.trace.requests for c in again] == [c.trace.requests for c in rate]


@needs_corpus
def test_scoring_ignores_the_warm_up_and_static_p99_learns_only_from_it() -> None:
    case = traffic_cases()[0]
    reactive = evaluate(case, reactive_only(case.trace))
    scored = sum(1 for m in case.trace.minutes if m >= case.scored_from)
    assert reactive.scored_minutes == scored
    assert reactive.under_minutes > 0
    # static-p99 from the warm-up only: the 99th percentile of its needed instances.
    warm = sorted(
        math.ceil(r / CAPACITY - 1e-9)
        for m, r in zip(case.trace.minutes, case.trace.requests, strict=True)
        if m < case.scored_from
    )
    [(_, low, high)] = static_p99(case.trace, case.scored_from)
    assert (low, high) == (warm[int(0.99 * (len(warm) - 1))], 1000)
    static = evaluate(case, static_p99(case.trace, case.scored_from))
    assert static.under_minutes < reactive.under_minutes
    assert static.instance_minutes > reactive.instance_minutes
