"""The pure decision core: forecast, rules, bounds, cooldown, tolerance, guard, DST, capacity."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.scaling.capacity import learn_capacity
from functions.scaling.forecast import ForecastConfig, History, drop_outages, forecast
from functions.scaling.models import Capacity, Recommendation, ScalingState
from functions.scaling.policy import PolicyConfig, decide, on_grid
from functions.scaling.replay import Replayer, Trace
from functions.scaling.rules import Bounds, RulesError, active_rules, parse_rules
from functions.scaling.synthetic import TraceSpec, generate
from functions.scaling.time_grid import HOUR, MINUTE

UTCZ = ZoneInfo("UTC")
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def history_of(minutes: list[datetime], requests: list[float], at: datetime) -> History:
    """Hourly means and peaks of the served minutes before ``at``, and its last 130 minutes."""
    trace = Trace(minutes=minutes, requests=requests, zone=UTCZ)
    replayer = Replayer(trace, 100.0)
    replayer._close_hours(at)
    recent = {m: r for m, r in zip(minutes, requests, strict=True) if at - 130 * MINUTE <= m < at}
    return History(
        hourly=replayer.hourly, recent=recent, first_seen=minutes[0], hourly_peak=replayer.hourly_peak
    )


def realised_peak(minutes: list[datetime], requests: list[float], at: datetime) -> float:
    return max(r for m, r in zip(minutes, requests, strict=True) if at <= m < at + HOUR)


def test_forecast_follows_daily_and_weekly_seasonality() -> None:
    minutes, requests = generate(
        TraceSpec(days=21, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0)
    )
    errors = []
    for day in (15, 16, 19, 20):  # weekdays and a weekend
        for hour in (3, 8, 12, 17, 21):
            at = T0 + timedelta(days=day, hours=hour)
            fc = forecast(history_of(minutes, requests, at), at, UTCZ, [], ForecastConfig())
            assert fc.method == "seasonal"
            errors.append(abs(math.log(fc.point / realised_peak(minutes, requests, at))))
    # Night (300/min) and day (3000/min) peaks are a decade apart; the forecast is within ~20%.
    assert sorted(errors)[len(errors) // 2] < 0.12
    assert max(errors) < 0.45


def test_weekend_forecast_uses_weekends() -> None:
    minutes, requests = generate(
        TraceSpec(days=21, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0)
    )
    saturday_noon = T0 + timedelta(days=19, hours=12)
    friday_noon = saturday_noon - timedelta(days=1)
    sat = forecast(history_of(minutes, requests, saturday_noon), saturday_noon, UTCZ, [], ForecastConfig())
    fri = forecast(history_of(minutes, requests, friday_noon), friday_noon, UTCZ, [], ForecastConfig())
    assert sat.point < 0.75 * fri.point
    assert 6 not in sat.lags_days or 1 not in sat.lags_days  # never Friday's noon for a Saturday


def test_fallback_under_two_days_and_without_data() -> None:
    minutes, requests = generate(TraceSpec(days=3, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0))
    at = T0 + timedelta(days=1, hours=10)
    fc = forecast(history_of(minutes, requests, at), at, UTCZ, [], ForecastConfig())
    assert fc.method == "fallback"
    assert fc.upper >= fc.point * 1.4
    empty = forecast(History(hourly={}, recent={}, first_seen=None), at, UTCZ, [], ForecastConfig())
    assert empty.method == "no-data"
    assert empty.upper == 0


def test_outage_does_not_teach_a_quiet_hour() -> None:
    spec = TraceSpec(days=16, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0, noise=0.0)
    minutes, requests = generate(spec)
    at = T0 + timedelta(days=15, hours=11, minutes=30)
    clean = forecast(history_of(minutes, requests, at), at, UTCZ, [], ForecastConfig())
    # An outage from 09:00 to 14:00 one day and one week before: zero rows, or no rows at all.
    broken = list(requests)
    for index, minute in enumerate(minutes):
        for day in (1, 7):
            if (
                at - timedelta(days=day, hours=2, minutes=30)
                <= minute
                < at + timedelta(hours=2, minutes=30) - timedelta(days=day)
            ):
                broken[index] = 0.0
    hit = forecast(history_of(minutes, broken, at), at, UTCZ, [], ForecastConfig())
    assert hit.point == pytest.approx(clean.point, rel=0.15)
    assert drop_outages({T0 + k * MINUTE: 0.0 for k in range(10)}, 10) == {}
    assert len(drop_outages({T0 + k * MINUTE: 0.0 for k in range(9)}, 10)) == 9


def _bounds(low: int = 0, high: int = 1000, rule: str | None = None) -> Bounds:
    return Bounds(low=low, high=high, rule=rule)


def _steady(rpm: float, at: datetime, days: int = 15) -> History:
    hourly = {at.replace(minute=0) - k * HOUR: rpm for k in range(1, days * 24)}
    recent = {at - k * MINUTE: rpm for k in range(1, 131)}
    return History(hourly=hourly, recent=recent, first_seen=at - timedelta(days=days))


def _decide(
    history: History,
    at: datetime,
    state: ScalingState,
    bounds: Bounds | None = None,
    guard: tuple[str, ...] = (),
):
    return decide(
        region="r",
        at=at,
        history=history,
        state=state,
        bounds=bounds or _bounds(),
        capacity=Capacity(rpm=100, source="configured"),
        zone=UTCZ,
        guard_firing=guard,
    )


def test_desired_min_formula_and_bounds() -> None:
    at = T0 + timedelta(days=5, hours=12)
    decision, _ = _decide(_steady(1000, at), at, ScalingState())
    # Flat 1000/min: the upper band (point 1.05 x 1000 x the default band 1.3) / 100 per instance,
    # over the last minute's 1000 x 1.2 headroom / 100.
    assert decision.forecast.method == "seasonal"
    assert decision.desired_min == math.ceil(decision.forecast.upper / 100) == 14
    assert (decision.bound_by, decision.last_minute_rpm) == ("forecast", 1000)
    # The last minute at 3000/min: its load plus the headroom wins (36 instances).
    history = _steady(1000, at)
    spike = replace(history, recent={**history.recent, at - MINUTE: 3000.0})
    loaded, _ = _decide(spike, at, ScalingState())
    assert (loaded.desired_min, loaded.bound_by) == (36, "load")
    # Without following the load (the bench's row of the earlier policy): the band alone, which
    # never falls under the last 10 minutes' busiest minute (3000/min: 30), with no headroom here.
    unfollowed, _ = decide(
        region="r", at=at, history=spike, state=ScalingState(), bounds=_bounds(),
        capacity=Capacity(rpm=100, source="configured"), zone=UTCZ, config=PolicyConfig(follow_load=False),
    )  # fmt: skip
    assert (unfollowed.desired_min, unfollowed.bound_by) == (30, "forecast")
    low, _ = _decide(_steady(10, at), at, ScalingState(), _bounds(low=4, high=150, rule="morning-peak"))
    # The max leaves room for a burst (3x) above the min, not the rule's max of 150 whatever the load.
    assert (low.min_instances, low.max_instances, low.bound_by, low.rule) == (
        4,
        12,
        "rule-min",
        "morning-peak",
    )
    high, _ = _decide(_steady(100_000, at), at, ScalingState(), _bounds(low=2, high=80))
    assert (high.min_instances, high.max_instances, high.bound_by) == (80, 80, "rule-max")


def test_scale_up_at_once_scale_down_after_stabilisation_by_half() -> None:
    at = T0 + timedelta(days=5, hours=12)
    decision, state = _decide(_steady(1000, at), at, ScalingState())
    start = decision.min_instances
    high, state = _decide(_steady(4000, at + 5 * MINUTE), at + 5 * MINUTE, state)
    assert high.min_instances > start
    assert high.changed  # up at once
    peak = high.min_instances
    seen = []
    for step in range(2, 30):
        now = at + 5 * step * MINUTE
        decision, state = _decide(_steady(100, now), now, state)
        seen.append((step, decision.min_instances, decision.bound_by))
    first_drop = next(s for s, value, _ in seen if value < peak)
    assert (first_drop - 1) * 5 >= 15  # 15 minutes of lower forecasts first
    values = [peak] + [v for _, v, _ in seen]
    assert all(b >= math.ceil(a / 2) for a, b in itertools.pairwise(values))  # at most half a step
    assert values[-1] < peak / 4


def test_tolerance_ignores_small_scale_downs_never_a_scale_up() -> None:
    at = T0 + timedelta(days=5, hours=12)
    decision, state = _decide(_steady(1000, at), at, ScalingState())
    current = decision.min_instances
    assert current >= 10
    # One instance short of the forecast: raised at once (a short minute costs more than an update).
    short = state.model_copy(update={"min_instances": current - 1})
    raised, _ = _decide(_steady(1000, at + 5 * MINUTE), at + 5 * MINUTE, short)
    assert (raised.min_instances, raised.bound_by) == (current, "forecast")
    # One above it, long enough for a scale-down: within 10%, kept (no update every 5 minutes).
    above = state.model_copy(
        update={
            "min_instances": current + 1,
            "recommendations": [Recommendation(at=at - k * 5 * MINUTE, min=current) for k in range(1, 8)],
        }
    )
    kept, _ = _decide(_steady(1000, at + 5 * MINUTE), at + 5 * MINUTE, above)
    assert (kept.min_instances, kept.bound_by) == (current + 1, "tolerance")


def test_guard_holds_and_reverts_a_recent_scale_down() -> None:
    at = T0 + timedelta(days=5, hours=12)
    state = ScalingState(
        min_instances=20, max_instances=1000, previous_min=40, previous_max=1000, changed_at=at - 10 * MINUTE
    )
    state = state.model_copy(
        update={"recommendations": [Recommendation(at=at - k * 5 * MINUTE, min=3) for k in range(1, 8)]}
    )
    calm, _ = _decide(_steady(100, at), at, state)
    assert calm.min_instances < 20
    reverted, _ = _decide(_steady(100, at), at, state, guard=("error-rate-critical",))
    assert (reverted.min_instances, reverted.bound_by) == (40, "guard-revert")
    assert reverted.guard_firing == ["error-rate-critical"]
    old = state.model_copy(update={"changed_at": at - 3 * HOUR})
    held, _ = _decide(_steady(100, at), at, old, guard=("latency-p95-high",))
    assert (held.min_instances, held.bound_by) == (20, "guard-hold")


def test_rules_in_local_time_across_dst() -> None:
    ruleset = active_rules()
    # Brussels moves from UTC+1 to UTC+2 on 2026-03-29: 08:00 local is 07:00 UTC, then 06:00 UTC.
    before = datetime(2026, 3, 28, 7, 15, tzinfo=UTC)
    after = datetime(2026, 3, 30, 6, 15, tzinfo=UTC)
    assert ruleset.bounds("europe-west1", before).rule == "morning-peak"
    assert ruleset.bounds("europe-west1", after).rule == "morning-peak"
    assert ruleset.bounds("europe-west1", after + HOUR).rule is None
    assert ruleset.bounds("europe-west1", after + HOUR).low == 1  # EU floor 1, not the seeds' 2
    assert ruleset.bounds("us-central1", datetime(2026, 3, 30, 13, 15, tzinfo=UTC)).rule == "morning-peak"
    # Chicago falls back on 2026-11-01: 08:00 local is 14:00 UTC after it.
    assert ruleset.bounds("us-central1", datetime(2026, 11, 2, 14, 30, tzinfo=UTC)).rule == "morning-peak"


def test_forecast_lags_follow_local_days_across_dst() -> None:
    zone = ZoneInfo("Europe/Brussels")
    at = datetime(2026, 3, 30, 7, 30, tzinfo=UTC)  # 09:30 local, the day after the change
    hourly = {}
    for day in range(1, 15):
        for hour in range(24):
            local = datetime(2026, 3, 30, hour, tzinfo=zone) - timedelta(days=day)
            local = local.replace(tzinfo=None).replace(tzinfo=zone)
            hourly[local.astimezone(UTC)] = 5000.0 if hour == 10 else 500.0
    history = History(hourly=hourly, recent={}, first_seen=at - timedelta(days=15))
    fc = forecast(history, at, zone, [], ForecastConfig())
    # 09:00-11:00 local holds the 10:00 peak only if lags are counted in local days.
    assert fc.hourly_mean == pytest.approx(5000.0)


def test_bad_rules_are_rejected_naming_rule_and_field() -> None:
    with pytest.raises(RulesError) as bad:
        parse_rules(
            {
                "regions": {
                    "eu": {
                        "time_zone": "Europe/Brussels",
                        "rules": [
                            {"name": "ok", "start": "08:00", "end": "09:00", "min": 1, "max": 5},
                            {"name": "lunch", "start": "12:75", "end": "13:00", "min": 1, "max": 5},
                            {"name": "upside-down", "start": "17:00", "end": "18:00", "min": 9, "max": 3},
                        ],
                    },
                    "us": {"time_zone": "Mars/Olympus"},
                }
            }
        )
    text = "\n".join(bad.value.errors)
    assert "region 'eu' rule 'lunch' (rules[1]) field 'start'" in text
    assert "rule 'upside-down' (rules[2])" in text
    assert "above max" in text
    assert "region 'us' field 'time_zone'" in text
    with pytest.raises(RulesError, match="field 'floor'"):
        parse_rules({"regions": {"eu": {"time_zone": "UTC", "floor": -1}}})
    with pytest.raises(RulesError, match="days"):
        parse_rules(
            {
                "regions": {
                    "eu": {
                        "time_zone": "UTC",
                        "rules": [
                            {
                                "name": "x",
                                "start": "01:00",
                                "end": "02:00",
                                "days": ["funday"],
                                "min": 0,
                                "max": 1,
                            }
                        ],
                    }
                }
            }
        )


def test_rule_wrapping_midnight_belongs_to_its_start_day() -> None:
    ruleset = parse_rules(
        {
            "regions": {
                "r": {
                    "time_zone": "UTC",
                    "rules": [
                        {
                            "name": "late",
                            "start": "22:00",
                            "end": "02:00",
                            "days": ["fri"],
                            "min": 3,
                            "max": 9,
                        }
                    ],
                }
            }
        }
    )
    friday = datetime(2026, 3, 6, tzinfo=UTC)
    assert ruleset.bounds("r", friday + timedelta(hours=23)).rule == "late"
    assert ruleset.bounds("r", friday + timedelta(hours=25)).rule == "late"  # Saturday 01:00
    assert ruleset.bounds("r", friday + timedelta(hours=1)).rule is None  # Friday 01:00: Thursday's


def test_capacity_learned_near_the_cpu_target_else_default() -> None:
    samples = [(6000.0, 10.0, 0.65)] * 12 + [(100.0, 10.0, 0.05)] * 30
    learned = learn_capacity(samples, default_rpm=999)
    assert learned.source == "learned"
    assert learned.rpm == pytest.approx(600)
    assert learn_capacity(samples[:5], default_rpm=999).rpm == 999


def _at_nine(rpm: float, state: ScalingState | None = None, guard: tuple[str, ...] = ()):
    """09:00, the 08-09 peak rule (max 150) just over: the base max is 100."""
    at = T0 + timedelta(days=5, hours=9)
    return _decide(_steady(rpm, at), at, state or ScalingState(), Bounds(low=2, high=100, ceiling=150), guard)


def test_max_follows_the_band_and_never_cuts_the_running_load() -> None:
    # 10,000/min needs 120 instances now (100/min each, 20% headroom): the max is not cut to the
    # base max of 100 at 09:00 (the old max came from the rule alone), only to what the load needs.
    busy, _ = _at_nine(10_000)
    assert (busy.max_instances, busy.max_bound_by) == (120, "load")
    assert busy.min_instances <= 100
    # A quiet hour: room for 3x the upper band (here 3x the min), not the rule's 100 whatever the load.
    quiet, state = _at_nine(500)
    assert quiet.min_instances == 7
    assert (quiet.max_instances, quiet.max_bound_by) == (25, "forecast")
    # A live max a little above that is kept (no update every 5 minutes); far above, lowered.
    kept, _ = _at_nine(500, state.model_copy(update={"max_instances": 35}))
    assert (kept.max_instances, kept.max_bound_by) == (35, "tolerance")
    lowered, _ = _at_nine(500, state.model_copy(update={"max_instances": 90}))
    assert lowered.max_instances == 25
    held, _ = _at_nine(500, state.model_copy(update={"max_instances": 90}), guard=("latency-p95-high",))
    assert (held.max_instances, held.max_bound_by) == (90, "guard-hold")
    # No history to trust: the rule's max, as before.
    at = T0 + timedelta(days=5, hours=9)
    blind, _ = _decide(History(hourly={}, recent={}, first_seen=None), at, ScalingState(), _bounds(2, 100))
    assert (blind.max_instances, blind.max_bound_by) == (100, "no-forecast")


def test_the_function_records_the_hourly_peaks_the_replay_used_to_read() -> None:
    """The replay read each hour's busiest minute from the trace, which the function (hourly means
    from the store) never had. Now the decision records it from its own per-minute reads."""
    minutes, requests = generate(TraceSpec(days=16, seed=5))
    trace = Trace(minutes=minutes, requests=requests, zone=UTCZ)
    recorded = Replayer(trace, 200.0)
    from_trace = Replayer(trace, 200.0, use_peaks=True)
    ours = list(recorded.decisions())
    list(from_trace.decisions())
    peaks = recorded.state.hourly_peaks
    common = [h for h in peaks if h in from_trace.hourly_peak]
    assert len(peaks) >= 14 * 24
    assert sum(peaks[h] == from_trace.hourly_peak[h] for h in common) >= 0.97 * len(common)
    # Quarter-hours too: the forecast is of the next 30 minutes. peak once they exist.
    quarters = recorded.state.quarter_peaks
    assert len(quarters) >= 0.9 * 14 * 96
    assert all(max(quarters[h + k * 15 * MINUTE] for k in range(4)) == peaks[h] for h in common[-48:])
    assert ours[-1].forecast.window_minutes == ForecastConfig().window_minutes < 60
    # Stored as JSON in Firestore and read back.
    again = ScalingState.model_validate_json(recorded.state.model_dump_json())
    assert again.hourly_peaks == peaks


def test_quarter_hour_forecast_follows_the_next_30_minutes() -> None:
    """With quarter-hour peaks recorded, the forecast is of the next 30 minutes' busiest minute:
    at 07:50 on a weekday it sees the 08:00-08:20 morning rise, at 09:40 not the hour's 09:00 peak."""
    minutes, requests = generate(
        TraceSpec(days=21, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0)
    )
    quarters: dict[datetime, float] = {}
    for minute, value in zip(minutes, requests, strict=True):
        start = minute.replace(minute=minute.minute - minute.minute % 15)
        quarters[start] = max(quarters.get(start, 0.0), value)
    errors = []
    for day in (15, 16, 17, 19):
        for hour, minute in ((3, 10), (7, 50), (9, 40), (12, 5), (17, 35), (21, 50)):
            at = T0 + timedelta(days=day, hours=hour, minutes=minute)
            base = history_of(minutes, requests, at)
            history = History(
                hourly=base.hourly,
                recent=base.recent,
                first_seen=base.first_seen,
                quarter_peak={q: v for q, v in quarters.items() if q + 15 * MINUTE <= at},
            )
            fc = forecast(history, at, UTCZ, [], ForecastConfig())
            assert fc.window_minutes == 30
            realised = max(r for m, r in zip(minutes, requests, strict=True) if at <= m < at + 30 * MINUTE)
            errors.append(abs(math.log(fc.point / realised)))
    assert sorted(errors)[len(errors) // 2] < 0.1
    assert max(errors) < 0.4


def test_an_ingestion_hole_is_missing_data_not_a_quiet_hour() -> None:
    """Half of the last hour's minutes never reached the metric store. The query API's hourly
    sum reads that hour at half its load (sum / 60 did, and so did the 0 of each empty minute);
    the decision records each hour's mean over its served minutes from its per-minute reads and
    forecasts as if the hole were not there, not half the load lower."""
    minutes, requests = generate(
        TraceSpec(days=16, bursts_per_week=0, outage=None, long_gaps=[], gap_share=0)
    )
    at = T0 + timedelta(days=15, hours=10, minutes=10)  # a Tuesday, the morning's load
    full = history_of(minutes, requests, at)
    hole_start, hole_end = at.replace(minute=0) - HOUR, at.replace(minute=30) - HOUR
    in_hole = [m for m in minutes if hole_start <= m < hole_end]
    served = [r for m, r in zip(minutes, requests, strict=True) if hole_end <= m < hole_start + HOUR]
    holed = History(
        # The hour as the store can answer it: its sum over the minutes that arrived, / 60.
        hourly={**full.hourly, hole_start: sum(served) / 60},
        recent={m: v for m, v in full.recent.items() if m not in in_hole},
        first_seen=full.first_seen,
        hourly_peak=full.hourly_peak,
    )
    assert len(in_hole) == 30
    seen, _ = _decide(full, at, ScalingState())
    with_hole, state = _decide(holed, at, ScalingState())
    assert with_hole.forecast.point == pytest.approx(seen.forecast.point, rel=0.03)
    assert with_hole.min_instances >= seen.min_instances - 1
    assert state.hourly_means[hole_start] == pytest.approx(sum(served) / len(served))


def _latest(history: History, at: datetime) -> History:
    """What a decision off the forecast grid reads: the last 15 minutes, nothing hourly."""
    recent = {m: v for m, v in history.recent.items() if m >= at - 15 * MINUTE}
    return History(hourly={}, recent=recent, first_seen=None)


def test_between_refreshes_the_forecast_is_reused_and_the_min_follows_the_last_minute() -> None:
    at = T0 + timedelta(days=5, hours=12)
    assert on_grid(at)
    assert not on_grid(at + MINUTE)
    refreshed, state = _decide(_steady(1000, at), at, ScalingState())
    assert state.forecast_at == at
    assert state.forecast_min == refreshed.desired_min == 14
    assert len(state.pending) == 1
    # A minute later, reading only the last 15 minutes: the same forecast, nothing learned.
    later = at + MINUTE
    quiet, after = _decide(_latest(_steady(1000, later), later), later, state)
    assert (quiet.desired_min, quiet.bound_by, quiet.forecast_at) == (14, "forecast", at)
    assert quiet.forecast.upper == refreshed.forecast.upper
    assert (after.pending, after.errors, after.hourly_peaks) == (
        state.pending,
        state.errors,
        state.hourly_peaks,
    )
    # The minute before jumped to 2500/min: raised at once to its load plus 20% (30 instances),
    # two minutes before the platform's own autoscaler would see it.
    history = _latest(_steady(1000, later), later)
    jump = replace(history, recent={**history.recent, later - MINUTE: 2500.0})
    raised, raised_state = _decide(jump, later, state)
    assert (raised.min_instances, raised.bound_by, raised.changed) == (30, "load", True)
    # Held like any recommendation: lowered once 15 minutes of lower ones have passed (as the
    # platform keeps an instance 15 minutes), at most by half.
    mins = []
    for k in range(2, 25):
        now = at + k * MINUTE
        steady = _steady(1000, now)
        decision, raised_state = _decide(steady if on_grid(now) else _latest(steady, now), now, raised_state)
        mins.append((k, decision.min_instances))
    assert all(value == 30 for k, value in mins if k <= 15)
    assert dict(mins)[16] == 15


def test_without_a_recent_forecast_a_minute_decision_holds_and_only_raises() -> None:
    at = T0 + timedelta(days=5, hours=12, minutes=3)
    assert not on_grid(at)
    state = ScalingState(min_instances=20, max_instances=60)
    held, after = _decide(_latest(_steady(100, at), at), at, state)
    # 100/min needs 2 instances, but with no forecast to follow the service's 20 are kept.
    assert (held.min_instances, held.max_instances, held.forecast.method) == (20, 60, "held")
    assert held.forecast_at is None
    assert after.forecast is None
    busy, _ = _decide(_latest(_steady(3000, at), at), at, state)
    assert (busy.min_instances, busy.bound_by, busy.max_instances) == (36, "load", 60)
    # A forecast older than two refreshes is not followed either.
    _, fresh = _decide(_steady(100, at - 3 * MINUTE), at - 3 * MINUTE, ScalingState())
    stale = fresh.model_copy(update={"min_instances": 20, "max_instances": 60, "recommendations": []})
    old, _ = _decide(_latest(_steady(100, at + 10 * MINUTE), at + 10 * MINUTE), at + 10 * MINUTE, stale)
    assert (old.min_instances, old.forecast.method) == (20, "held")
