"""The anomaly detector's seasonal model: values kept by time slot, the same-slot baseline one
period earlier, and the choice of the period (none, a day or a week) that fits the data."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from zoneinfo import ZoneInfo

from functions.alerts.sampling import Spans
from functions.alerts.sorted_window import SortedWindow


class WallClock:
    """The slot shift that keeps "the same time one period ago" on the local clock of a zone.

    Slots are UTC (timestamp / interval). A series that follows people's days (sign-ins by day,
    requests in office hours) repeats on local time, so after a change of summer time the UTC
    slot one day earlier is an hour off: every ramp of the day then reads as an anomaly until the
    median of the last periods has caught up, days later."""

    def __init__(self, zone: ZoneInfo, interval: float) -> None:
        self.zone = zone
        self.interval = interval
        self._offsets: dict[int, float] = {}  # UTC offset in seconds by quarter hour

    def _offset(self, slot: int) -> float:
        # Zones change their offset on a quarter hour at the finest, so one look-up per quarter.
        quarter = int(slot * self.interval // 900)
        offset = self._offsets.get(quarter)
        if offset is None:
            if len(self._offsets) > 50_000:
                self._offsets.clear()
            utcoffset = datetime.fromtimestamp(quarter * 900, self.zone).utcoffset()
            offset = self._offsets[quarter] = utcoffset.total_seconds() if utcoffset else 0.0
        return offset

    def shift(self, slot: int, back: int) -> int:
        """Slots to add to ``slot - back`` so that it falls on the same local time as ``slot``."""
        return round((self._offset(slot) - self._offset(slot - back)) / self.interval)


class SlotHistory:
    """Transformed values by time slot (timestamp / interval): seasonal look-ups stay aligned
    when rows are missing or timestamps jitter, which index arithmetic would not."""

    def __init__(self) -> None:
        self.values: dict[int, float] = {}
        self.order: deque[int] = deque()
        # Set when the series' pattern follows a zone's local clock (None: UTC).
        self.wall_clock: WallClock | None = None

    def slot_for(self, seconds: float, interval: float) -> int:
        slot = round(seconds / interval)
        if self.order and slot <= self.order[-1]:
            slot = self.order[-1] + 1  # two rows in one interval: keep both, in order
        return slot

    def add(self, slot: int, value: float, keep: int) -> None:
        """Record a value, forgetting the oldest beyond the last ``keep`` slots."""
        self.values[slot] = value
        self.order.append(slot)
        while len(self.order) > keep:
            del self.values[self.order.popleft()]

    def seen(self) -> int:
        """Slots between the oldest kept value and the newest."""
        return self.order[-1] - self.order[0]

    def expected(self, slot: int, period: int, periods: int) -> float | None:
        """The median of the same slot (±1) over the last ``periods`` periods, if 6 are known."""
        values, clock = self.values, self.wall_clock
        sample = []
        for k in range(1, periods + 1):
            same = slot - k * period + (clock.shift(slot, k * period) if clock else 0)
            sample.extend(values[s] for s in (same - 1, same, same + 1) if s in values)
        if len(sample) < 6:
            return None
        sample.sort()
        return sample[len(sample) // 2]


def _robust_spread(residuals: list[float]) -> float:
    # The 90th percentile of the deviations, not their median: a narrow daily peak covers well
    # under half of the day, and the median alone would not see it.
    residuals.sort()
    med = residuals[len(residuals) // 2]
    devs = sorted(abs(r - med) for r in residuals)
    return devs[(9 * len(devs)) // 10] + 1e-12


def best_period(history: SlotHistory, spans: Spans, periods: int, gain: float) -> int | None:
    """The period (day or week) that shrinks the robust spread of the residuals the most, if by
    ``gain``; 0 for none; None when there is too little history to tell (keep the model)."""
    order = list(history.order)
    n = len(order)
    candidates = [p for p in (spans.day, spans.week) if p >= 12 and order[-1] - order[0] >= 3 * p]
    if not candidates:
        return None
    span = 4 * spans.week if order[-1] - order[0] >= 3 * spans.week else 6 * spans.day
    recent = [s for s in order if s > order[-1] - span]
    ref = spans.reference
    slots = history.values

    # Baseline spread: against a trailing median of the reference window (the non-seasonal model).
    stride = max(1, len(recent) // 600)
    plain: list[float] = []
    first = max(n - len(recent), ref)
    window = SortedWindow(ref)  # slides over the span: one insertion per point, no re-sorting
    for s in order[first - ref : first]:
        window.push(slots[s])
    for i in range(first, n):
        if (i - first) % stride == 0:
            plain.append(slots[order[i]] - window.sorted[len(window) // 2])
        window.push(slots[order[i]])
    if len(plain) < 30:
        return None
    best, best_spread = 0, _robust_spread(plain)
    for period in candidates:
        res: list[float] = []
        for s in recent[::stride]:
            expected = history.expected(s, period, periods)
            if expected is not None:
                res.append(slots[s] - expected)
        if len(res) < 30:
            continue
        spread = _robust_spread(res)
        if spread < best_spread * gain:
            best, best_spread = period, spread
    return best
