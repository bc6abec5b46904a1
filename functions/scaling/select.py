"""Online selection between min targets, per region, on the region's own causal record
(follow-the-leader over experts). Pure: no I/O.

Each decision records the min every candidate target (expert) would have set, held as the policy
holds a scale-down (the highest of its recommendations over the stabilisation window). Once its
minutes are over, the decision's outcome is scored per expert with the contract's platform model
over the minutes the decision held (served minutes only): provided = max(expert's min, what the platform's
autoscaler keeps, the busiest need of the minutes 2-15 before), the instance-minutes it would
have cost and the minutes it would have missed; reactive-only's (min 0) beside them. The next
decision uses the expert with the least loss over the trailing ``window`` of outcomes:

    loss = instance-minutes + lambda x missed minutes,
    lambda = ``miss_weight`` x (reactive-only's instance-minutes / its missed minutes, same window)

so lambda is in the region's own units: reactive-only's cost per missed minute, times the goal's
exchange rate. The goal (<= 3% of reactive-only's missed minutes at <= 1.4x its instance-minutes)
trades 0.4 of reactive-only's cost for 0.97 of its misses (``GOAL_LINE``, the line from reactive-only
to the goal's corner), or, counting each against its own budget, 0.4 of the cost for 0.03 of the
misses (``GOAL_BUDGETS``). An expert's min never lowers what the autoscaler keeps, so its misses are
never more than reactive-only's: a window without reactive misses has no misses to weigh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from functions.scaling.forecast import MINUTE, floor_minute

Expert = Literal["forecast", "lead", "point"]
GOAL_LINE = 0.4 / 0.97  # the goal's corner against reactive-only: +0.4 of its cost for -0.97 of its misses
GOAL_BUDGETS = 0.4 / 0.03  # each side of the goal at its own budget: 0.4 of the cost, 0.03 of the misses


@dataclass(frozen=True)
class SelectConfig:
    # The first is the default: chosen until ``min_outcomes`` exist and on a tie.
    experts: tuple[Expert, ...] = ("forecast", "lead")
    window: int = 576  # two days of 5-minute decisions
    min_outcomes: int = 288  # a day of them before any other expert is chosen
    miss_weight: float = GOAL_LINE
    point_headroom: float = 0.1  # the "point" expert: the forecast point plus this
    hold_minutes: int = 5  # the minutes a decision's min holds (until the next one)
    reactive_lag: int = 2  # the platform model's autoscaler: the need of minutes 2-15 before
    reactive_span: int = 15


class ExpertOutcome(BaseModel):
    """One past decision scored per expert (same order as ``SelectConfig.experts``)."""

    at: AwareDatetime
    cost: list[float]  # instance-minutes over the decision's served minutes
    missed: list[int]  # of them, the minutes under the need
    reactive_cost: float
    reactive_missed: int


def outcome(
    made_at: datetime,
    mins: Sequence[int],
    recent: Mapping[datetime, float],
    capacity_rpm: float,
    config: SelectConfig,
) -> ExpertOutcome | None:
    """What each min in ``mins`` would have cost and missed over the ``hold_minutes`` from
    ``made_at``, by the platform model (a minute without data is not scored, and counts as no need
    for the autoscaler's memory, as in the contract's scoring); None when no minute was served."""
    start = floor_minute(made_at)

    def need(minute: datetime) -> int:
        value = recent.get(minute)
        return math.ceil(value / capacity_rpm - 1e-9) if value is not None else 0

    cost = [0.0] * len(mins)
    missed = [0] * len(mins)
    reactive_cost, reactive_missed, served = 0.0, 0, 0
    for offset in range(config.hold_minutes):
        minute = start + offset * MINUTE
        if minute not in recent:
            continue
        served += 1
        needed = need(minute)
        kept = max(need(minute - k * MINUTE) for k in range(config.reactive_lag, config.reactive_span + 1))
        reactive_cost += kept
        reactive_missed += kept < needed
        for index, low in enumerate(mins):
            provided = max(low, kept)
            cost[index] += provided
            missed[index] += provided < needed
    if not served:
        return None
    return ExpertOutcome(
        at=made_at, cost=cost, missed=missed, reactive_cost=reactive_cost, reactive_missed=reactive_missed
    )


def losses(outcomes: Sequence[ExpertOutcome], experts: int, config: SelectConfig) -> list[float]:
    """Each expert's loss over ``outcomes``: instance-minutes + lambda x missed minutes."""
    reactive_cost = sum(o.reactive_cost for o in outcomes)
    reactive_missed = sum(o.reactive_missed for o in outcomes)
    exchange = config.miss_weight * reactive_cost / max(reactive_missed, 1)
    return [
        sum(o.cost[i] for o in outcomes) + exchange * sum(o.missed[i] for o in outcomes)
        for i in range(experts)
    ]


def choose(outcomes: Sequence[ExpertOutcome], config: SelectConfig) -> int:
    """The index of the expert with the least loss over the trailing window (the first, the
    default, until ``min_outcomes`` exist and on a tie). Outcomes recorded for another set of
    experts are left out."""
    experts = len(config.experts)
    usable = [o for o in outcomes if len(o.cost) == experts][-config.window :]
    if len(usable) < config.min_outcomes:
        return 0
    scored = losses(usable, experts, config)
    return min(range(experts), key=lambda i: (scored[i], i))
