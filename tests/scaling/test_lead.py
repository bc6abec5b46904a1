"""The lead target (functions/scaling/lead.py) and how ``decide`` uses it: pure, no emulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.scaling.forecast import HOUR, MINUTE, ForecastConfig, History
from functions.scaling.lead import (
    LeadConfig,
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
