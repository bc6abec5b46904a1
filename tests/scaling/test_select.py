"""Online selection between min targets (``select.py``): each past decision scored per target by
the platform model, the loss's exchange rate, the choice, and ``decide`` following it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from functions.scaling.forecast import MINUTE, History
from functions.scaling.policy import Capacity, PolicyConfig, ScalingState, decide
from functions.scaling.rules import Bounds
from functions.scaling.select import (
    GOAL_BUDGETS,
    GOAL_LINE,
    ExpertOutcome,
    SelectConfig,
    choose,
    losses,
    outcome,
)

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_an_outcome_scores_each_min_by_the_platform_model() -> None:
    """Over the decision's 5 minutes: provided = max(min, the busiest need of minutes 2-15
    before); a minute under its need is missed; a minute without data is not scored."""
    made_at = T0
    recent = {made_at - k * MINUTE: 200.0 for k in range(1, 20)}  # 2 instances kept by the autoscaler
    recent[made_at] = 500.0  # needs 5
    recent[made_at + MINUTE] = 350.0  # needs 4
    # made_at + 2 min: no data (not scored)
    recent[made_at + 3 * MINUTE] = 100.0  # needs 1
    recent[made_at + 4 * MINUTE] = 200.0
    scored = outcome(made_at, [0, 4, 6], recent, 100.0, SelectConfig())
    assert scored is not None
    # The autoscaler keeps 2 on the first two minutes (it reacts 2 minutes late: both missed), then
    # the 5 of made_at, 3 and 4 minutes before the last two (the hole counts as no need).
    assert (scored.reactive_cost, scored.reactive_missed) == (2 + 2 + 5 + 5, 2)
    assert scored.cost == [14, 4 + 4 + 5 + 5, 6 * 4]
    assert scored.missed == [2, 1, 0]  # a min of 4 misses the 5; a min of 6 misses nothing
    assert outcome(made_at, [3], {}, 100.0, SelectConfig()) is None


def _outcome(
    cost: list[float], missed: list[int], reactive_cost: float, reactive_missed: int
) -> ExpertOutcome:
    return ExpertOutcome(
        at=T0, cost=cost, missed=missed, reactive_cost=reactive_cost, reactive_missed=reactive_missed
    )


def test_the_loss_weighs_a_missed_minute_at_the_goals_exchange_rate() -> None:
    """lambda = miss_weight x reactive-only's instance-minutes per missed minute over the window:
    a cheaper target that misses more wins at the goal's line, loses when each side of the goal is
    weighed against its own budget; the first (the default) until a day of outcomes, and on a tie."""
    # Reactive-only: 1000 instance-minutes, 10 missed (100 per missed minute). Target 0 costs 1300
    # and misses 0; target 1 costs 1100 and misses 2.
    record = [_outcome([1300.0, 1100.0], [0, 2], 1000.0, 10)]
    line = SelectConfig(min_outcomes=1, miss_weight=GOAL_LINE)
    budgets = SelectConfig(min_outcomes=1, miss_weight=GOAL_BUDGETS)
    assert losses(record, 2, line) == [1300.0, 1100.0 + 2 * GOAL_LINE * 100]
    assert choose(record, line) == 1  # 1100 + 82 < 1300
    assert choose(record, budgets) == 0  # 1100 + 2667 > 1300
    assert choose(record, SelectConfig(min_outcomes=2)) == 0  # too few outcomes: the default
    assert choose([_outcome([5.0, 5.0], [0, 0], 5.0, 0)], line) == 0  # a tie: the default
    # Only the trailing window counts: an old outcome where target 1 missed a lot is forgotten.
    old = _outcome([100.0, 100.0], [0, 50], 100.0, 50)
    assert choose([old, *record], budgets) == 0
    assert (
        choose([old, _outcome([1300.0, 1100.0], [0, 0], 1000.0, 10)], SelectConfig(min_outcomes=1, window=1))
        == 1
    )
    # Outcomes recorded for another set of targets are left out.
    assert choose([_outcome([1.0], [0], 1.0, 0)] * 5, SelectConfig(min_outcomes=1)) == 0


def _steady(rpm: float, at: datetime, days: int = 15) -> History:
    hourly = {at.replace(minute=0) - k * timedelta(hours=1): rpm for k in range(1, days * 24)}
    recent = {at - k * MINUTE: rpm for k in range(1, 131)}
    return History(hourly=hourly, recent=recent, first_seen=at - timedelta(days=days))


def test_decide_uses_the_target_with_the_least_loss_and_records_each_targets_min() -> None:
    """With ``PolicyConfig.select`` the min is the chosen target's (``Decision.target``); each
    target's min is kept in the pending forecast and scored once its minutes are in. Off (the
    default) the decision is the forecast's, as before."""
    at = T0 + timedelta(days=5)
    history = _steady(1000, at)
    capacity = Capacity(rpm=100, source="configured")

    def run(config: PolicyConfig, state: ScalingState):
        return decide(
            region="r",
            at=at,
            history=history,
            state=state,
            bounds=Bounds(low=0, high=1000),
            capacity=capacity,
            zone=ZoneInfo("UTC"),
            config=config,
        )

    plain, _ = run(PolicyConfig(), ScalingState())
    select = SelectConfig(experts=("forecast", "lead", "point"), min_outcomes=3)
    # The "point" target (index 2) has been cheapest without missing more: it is chosen.
    record = [_outcome([130.0, 120.0, 110.0], [0, 0, 0], 100.0, 1)] * 3
    chosen, state = run(PolicyConfig(select=select), ScalingState(outcomes=record))
    assert plain.target is None
    assert chosen.target == "point"
    assert chosen.desired_min == math.ceil(chosen.forecast.point * 1.1 / 100 - 1e-9)
    assert chosen.desired_min < plain.desired_min
    mins = state.pending[-1].mins
    assert mins is not None
    assert (mins[0], mins[2]) == (plain.desired_min, chosen.desired_min)
    # Flat 1000/min: the lead is the recent peak x e^margin (the floor of 1.2 until rises are in).
    assert mins[1] == math.ceil(1000 * 1.3 / 100 - 1e-9)
    assert state.pending[-1].held == mins  # nothing earlier in the stabilisation window
    # A target's higher min of 10 minutes before is held (the stabilisation window), not scored as cut.
    earlier = state.pending[-1].model_copy(
        update={"made_at": at - timedelta(minutes=10), "mins": [99, 1, 1], "held": [99, 1, 1]}
    )
    _, with_earlier = run(PolicyConfig(select=select), ScalingState(outcomes=record, pending=[earlier]))
    assert with_earlier.pending[-1].held == [99, mins[1], mins[2]]
    # Too few outcomes: the default target, the forecast's.
    first, _ = run(PolicyConfig(select=select), ScalingState(outcomes=record[:2]))
    assert (first.target, first.desired_min) == ("forecast", plain.desired_min)
    # Once its forecast's window is over (an hour here: no quarter-hours recorded), the decision's
    # own 5 minutes are scored per target from the recent minutes.
    later = at + timedelta(minutes=65)
    _, after = decide(
        region="r",
        at=later,
        history=_steady(1000, later),
        state=state,
        bounds=Bounds(low=0, high=1000),
        capacity=capacity,
        zone=ZoneInfo("UTC"),
        config=PolicyConfig(select=select),
    )
    scored = after.outcomes[-1]
    assert scored.at == at
    assert scored.cost == [5.0 * max(m, 10) for m in mins]  # held == mins here
    assert (scored.missed, scored.reactive_cost) == ([0, 0, 0], 50.0)
    assert after.rises == [0.0]  # flat: the busiest minute equals the lead's base
