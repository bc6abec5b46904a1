"""The lead target (functions/scaling/lead.py) and how ``decide`` uses it: pure, no emulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.scaling.forecast import HOUR, MINUTE, ForecastConfig, History
from functions.scaling.lead import (
    LeadConfig,
    base_statistic,
    expected_growth,
    lead,
    margin,
    realised_rise,
    recent_peak,
)
from functions.scaling.policy import Capacity, PolicyConfig, ScalingState, decide
from functions.scaling.rules import Bounds

UTCZ = ZoneInfo("UTC")
AT = datetime(2026, 3, 17, 7, 50, tzinfo=UTC)  # a Tuesday
CONFIG = LeadConfig()
FC = ForecastConfig()


def _flat(rpm: float, at: datetime = AT, minutes: int = 130) -> dict[datetime, float]:
    return {at - k * MINUTE: rpm for k in range(1, minutes + 1)}


def test_recent_peak_leaves_out_the_arriving_minutes_and_outages() -> None:
    recent = _flat(1000)
    recent[AT - 1 * MINUTE] = 9000  # still arriving: not trusted
    recent[AT - 2 * MINUTE] = 8000
    assert recent_peak(recent, AT, CONFIG, FC) == (1000, 13)
    recent[AT - 3 * MINUTE] = 3000  # the last minute the function trusts
    recent[AT - 16 * MINUTE] = 7000  # before the lookback
    assert recent_peak(recent, AT, CONFIG, FC) == (3000, 13)
    # An outage (a run of zeros) is not a quiet spell to lead from: under half served, no lead.
    hole = {m: (0.0 if m >= AT - 20 * MINUTE else v) for m, v in _flat(1000).items()}
    assert recent_peak(hole, AT, CONFIG, FC) == (0.0, 0)
    assert lead(hole, None, AT, zone=UTCZ, rises=[], config=CONFIG, forecast_config=FC) is None
    assert lead({}, None, AT, zone=UTCZ, rises=[], config=CONFIG, forecast_config=FC) is None
    # A short quiet spell is served minutes (a real lull): led from.
    lull = {m: (0.0 if m >= AT - 8 * MINUTE else v) for m, v in _flat(1000).items()}
    assert recent_peak(lull, AT, CONFIG, FC) == (1000, 13)


def _quarters(ahead: float, behind: float, days: tuple[int, ...] = (1, 2, 7, 14)) -> dict[datetime, float]:
    """Quarter-hour peaks at the lags: the quarter 10 minutes ahead of 07:50 (08:00) and the one in
    the middle of the lookback (07:35 -> 07:30)."""
    out = {}
    for day in days:
        out[datetime(2026, 3, 17, 8, 0, tzinfo=UTC) - timedelta(days=day)] = ahead
        out[datetime(2026, 3, 17, 7, 30, tzinfo=UTC) - timedelta(days=day)] = behind
    return out


def test_growth_is_what_the_same_time_did_at_the_seasonal_lags() -> None:
    assert expected_growth(_quarters(2000, 1000), AT, UTCZ, CONFIG) == pytest.approx(2.0)
    # Clamped: never more than 3, never under 1 (the min never leads down; scale-down is the
    # stabilisation's job).
    assert expected_growth(_quarters(9000, 1000), AT, UTCZ, CONFIG) == 3.0
    assert expected_growth(_quarters(500, 1000), AT, UTCZ, CONFIG) == 1.0
    assert expected_growth(None, AT, UTCZ, CONFIG) == 1.0
    assert expected_growth({}, AT, UTCZ, CONFIG) == 1.0
    # The median over the lags: one odd day does not lead.
    odd = _quarters(1000, 1000) | _quarters(5000, 1000, days=(1,))
    assert expected_growth(odd, AT, UTCZ, CONFIG) == pytest.approx(1.0)
    # At 08:20 the quarters are 08:30 ahead and 08:00 behind: none recorded, nothing to grow by.
    later = datetime(2026, 3, 17, 8, 20, tzinfo=UTC)
    assert expected_growth(_quarters(2000, 1000), later, UTCZ, CONFIG) == 1.0


def test_margin_is_a_high_quantile_of_the_rises_never_under_zero() -> None:
    assert margin([0.5] * 23, CONFIG) == pytest.approx(math.log(1.3))  # too few: the default
    rises = [k / 1000 for k in range(1000)]  # 0 .. 0.999
    assert margin(rises, CONFIG) == pytest.approx(0.985 * 0.999, abs=1e-3)
    assert margin(rises, LeadConfig(rise_quantile=0.5)) == pytest.approx(0.4995, abs=1e-3)
    assert margin([-0.2] * 100, CONFIG) == 0.0  # falling traffic: lead from the peak itself


def test_realised_rise_is_the_next_minutes_over_the_base() -> None:
    made = AT - 30 * MINUTE
    recent = _flat(1000)
    recent[made + 3 * MINUTE] = 1500
    recent[made + 5 * MINUTE] = 4000  # after the decision's 5 minutes: the next decision's
    assert realised_rise(made, 1000, recent, CONFIG, FC) == pytest.approx(math.log(1.5))
    assert realised_rise(made, 0, recent, CONFIG, FC) is None
    assert realised_rise(AT + HOUR, 1000, recent, CONFIG, FC) is None  # nothing served then


def _history(recent: dict[datetime, float], at: datetime) -> History:
    hourly = {at.replace(minute=0) - k * HOUR: 1000.0 for k in range(1, 15 * 24)}
    return History(hourly=hourly, recent=recent, first_seen=at - timedelta(days=15))


def _run(state: ScalingState, at: datetime, recent: dict[datetime, float], config: PolicyConfig):
    return decide(
        region="r",
        at=at,
        history=_history(recent, at),
        state=state,
        bounds=Bounds(low=0, high=1000),
        capacity=Capacity(rpm=100, source="configured"),
        zone=UTCZ,
        config=config,
    )


def test_decide_learns_the_rises_and_leads_by_them() -> None:
    """Every 5 minutes the load steps between 1000 and 1400/min: the rises over the recent peak
    are learned once each decision's minutes are in, and the min then covers the step."""
    start = AT - timedelta(hours=6)
    series = {
        start - timedelta(hours=3) + k * MINUTE: (1400.0 if (k // 5) % 7 == 0 else 1000.0)
        for k in range(10 * 60)
    }
    state = ScalingState()
    config = PolicyConfig(lead=LeadConfig(min_rises=10, rise_quantile=0.9))
    at = start
    decisions = []
    while at <= AT:
        recent = {m: v for m, v in series.items() if at - 130 * MINUTE <= m < at}
        decision, state = _run(state, at, recent, config)
        decisions.append(decision)
        at += 5 * MINUTE
    assert len(state.rises) >= 40
    # Learned causally: a decision's rise is recorded once its forecast window is over.
    assert all(p.made_at + p.window_minutes * MINUTE > AT for p in state.pending)
    assert len(state.rises) + len(state.pending) == len(decisions)
    last = decisions[-1]
    assert last.lead is not None
    assert last.lead.margin >= 1.0
    assert last.min_instances >= 14  # covers the 1400/min steps: 14 instances
    # Without learned rises the same recent window would lead by the default 30%.
    fresh, _ = _run(ScalingState(), AT, {m: v for m, v in series.items() if m < AT}, config)
    assert fresh.lead is not None
    assert fresh.lead.margin == pytest.approx(1.3)
    # A dry run keeps the learning.
    assert ScalingState().learned(state).rises == state.rises


def test_no_recent_peak_falls_back_on_the_forecast_target() -> None:
    """A hole in the metric (or an outage) leaves nothing to lead from: the forecast's upper band
    plus the headroom, as the forecast target would set."""
    led, _ = _run(ScalingState(), AT, {}, PolicyConfig())
    forecast_target, _ = _run(ScalingState(), AT, {}, PolicyConfig(target="forecast"))
    assert led.lead is None
    assert led.desired_min == forecast_target.desired_min
    assert led.forecast.upper > 0  # the hourly history still forecasts
    assert led.desired_min == math.ceil(led.forecast.upper / 100 * 1.2 - 1e-9)


def test_a_noise_robust_base_is_less_moved_by_one_noisy_minute() -> None:
    served = [1000.0] * 10 + [3000.0] + [1000.0] * 2  # one minute 3x the rest
    assert base_statistic(served, CONFIG) == 3000
    assert base_statistic(served, LeadConfig(base="top3")) == pytest.approx(5000 / 3)
    assert base_statistic(served, LeadConfig(base="p90")) == 1000  # one minute in 13 is above it
    assert base_statistic(served + [3000.0] * 2, LeadConfig(base="p90")) == 3000
    assert base_statistic([], LeadConfig(base="top3")) == 0.0
    # The target still covers the lookback's busiest minute, whatever the base.
    recent = _flat(1000)
    recent[AT - 5 * MINUTE] = 3000
    led = lead(
        recent, None, AT, zone=UTCZ, rises=[0.0] * 30, config=LeadConfig(base="p90"), forecast_config=FC
    )
    assert led is not None
    assert led.peak == pytest.approx(1000)
    assert led.busiest == 3000
    assert led.target == 3000


def test_the_margin_can_be_floored_and_its_rises_clipped() -> None:
    rises = [0.01] * 90 + [1.0] * 10  # mostly flat, a tenth of decisions doubled and more
    assert margin(rises, LeadConfig(rise_quantile=0.95)) == pytest.approx(1.0)
    capped = LeadConfig(rise_quantile=0.95, rise_cap=math.log(1.5))
    assert margin(rises, capped) == pytest.approx(math.log(1.5))
    floored = LeadConfig(rise_quantile=0.5, rise_floor=math.log(1.2))
    assert margin(rises, floored) == pytest.approx(math.log(1.2))  # 0.01 would not cover a burst
    assert margin([], floored) == pytest.approx(math.log(1.3))  # the default is over the floor
    assert margin([], LeadConfig(rise_floor=math.log(1.5))) == pytest.approx(math.log(1.5))


def test_the_lead_combined_with_the_forecast_target() -> None:
    """A flat 1000/min with a quiet hourly history (the forecast's upper band plus 20% is the
    larger or the smaller target as the history says)."""
    recent = _flat(1000)
    lead_only, _ = _run(ScalingState(), AT, recent, PolicyConfig())
    forecast_only, _ = _run(ScalingState(), AT, recent, PolicyConfig(target="forecast"))
    larger, _ = _run(ScalingState(), AT, recent, PolicyConfig(target="lead-max", forecast_share=0.8))
    smaller, _ = _run(ScalingState(), AT, recent, PolicyConfig(target="lead-min"))
    assert lead_only.desired_min == 13  # 1000 x the default 1.3
    share = math.ceil(forecast_only.forecast.upper * 1.2 * 0.8 / 100 - 1e-9)
    assert larger.desired_min == max(13, share)
    assert smaller.desired_min == min(13, forecast_only.desired_min)
    assert forecast_only.desired_min != 13  # the two targets differ here, so the test can fail
