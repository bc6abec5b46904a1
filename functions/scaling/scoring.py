"""The platform model that scores a replay (the Scaling contract): needed(t) = ceil(requests(t)/R);
the platform's reactive autoscaler provides reactive(t) = max needed(u) for u in [t-15 min, t-2 min];
provided(t) = min(max_instances, max(min_instances, reactive(t))). A minute is under-provisioned when
provided(t) < needed(t); cost is the sum of provided(t). Minutes without a row are not scored."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Score:
    scored_minutes: int
    under_minutes: int
    instance_minutes: int

    def ratios(self, baseline: Score) -> tuple[float, float]:
        """(under-provisioned minutes, instance-minutes) as shares of ``baseline``'s."""
        under = self.under_minutes / baseline.under_minutes if baseline.under_minutes else math.inf
        cost = self.instance_minutes / baseline.instance_minutes if baseline.instance_minutes else math.inf
        return under, cost


def score(
    minutes: Sequence[datetime],
    requests: Sequence[float],
    capacity_rpm: float,
    decisions: Sequence[tuple[datetime, int, int]],
    *,
    scored_from: datetime | None = None,
) -> Score:
    """Score ``decisions`` ``(at, min, max)`` (sorted) over the trace; minutes before ``scored_from``
    (the warm-up) and before the first decision are not scored."""
    needed = {m: math.ceil(r / capacity_rpm - 1e-9) for m, r in zip(minutes, requests, strict=True)}
    stamps = [d[0] for d in decisions]
    under = cost = count = 0
    for minute in minutes:
        if scored_from is not None and minute < scored_from:
            continue
        index = bisect.bisect_right(stamps, minute) - 1
        if index < 0:
            continue
        _, low, high = decisions[index]
        reactive = max((needed.get(minute - k * MINUTE, 0) for k in range(2, 16)), default=0)
        provided = min(high, max(low, reactive))
        count += 1
        cost += provided
        if provided < needed[minute]:
            under += 1
    return Score(scored_minutes=count, under_minutes=under, instance_minutes=cost)
