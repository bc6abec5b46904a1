"""In-memory aggregation of one batch: per series and minute, one ``Cell`` (count, sum, min, max,
last, sketch), however many points arrive. Writes then grow with series x minutes, not points.

Cumulative points cannot be turned into increments before the stream's last value is read from
Firestore, so they are kept per stream (``CumulativePoint``) and resolved inside the write
transaction (``functions.ingestion.cumulative``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.metrics.sketch import MAPPING, Sketch
from shared.metrics.store import Summary, series_entry

_MIN_POSITIVE = MAPPING.min_possible
_MULTIPLIER = MAPPING._multiplier  # LogarithmicMapping: key = ceil(log2(v) * multiplier)
_log, _ceil = math.log, math.ceil

NANOS = 1_000_000_000
MINUTE_NANOS = 60 * NANOS


class Cell:
    """The rollup of one series over one bucket, as accumulated in memory or read back."""

    __slots__ = ("count", "keys", "last", "last_t", "max", "min", "points", "sketch", "sum", "unsummed")

    def __init__(self) -> None:
        # Data points added in memory (a histogram point is one point of many observations): what
        # is reported refused if the cell cannot be written. Not stored.
        self.points = 0
        self.count = 0.0
        self.sum = 0.0
        # Observations whose sum is unknown (histogram points without their optional sum).
        self.unsummed = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = 0.0
        self.last_t = -1
        self.sketch = Sketch()
        # The points' keys, for gauge samples and delta increments (``point_keys.py``). Not stored.
        self.keys: list[tuple[int, int, float]] | None = None

    def add(self, value: float, t: int) -> None:
        self.points += 1
        self.count += 1.0
        self.sum += value
        if value < self.min:  # noqa: PLR1730 - hot path, faster than min()
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value
        if t >= self.last_t:
            self.last = value
            self.last_t = t
        if value > _MIN_POSITIVE:
            # ddsketch's LogarithmicMapping.key, inlined (same formula, same keys).
            key = int(_ceil(_log(value, 2) * _MULTIPLIER))
            pos = self.sketch.pos
            pos[key] = pos.get(key, 0.0) + 1.0
        else:
            self.sketch.add(value)

    def add_increment(self, delta: float, t: int) -> None:
        """A sum's increment: one data point whose value is the increment."""
        self.add(delta, t)

    def add_distribution(  # noqa: PLR0917 - mirrors the OTLP histogram fields
        self,
        count: float,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
        keyed: Sketch,
        t: int,
    ) -> None:
        """A histogram's observations: exact count and sum (``None``: not sent, then unknown
        rather than 0), buckets already in sketch keys."""
        if count <= 0:
            return
        self.points += 1
        self.count += count
        if total is None:
            self.unsummed += count
        else:
            self.sum += total
        lo = minimum if minimum is not None else _sketch_bound(keyed, low=True)
        hi = maximum if maximum is not None else _sketch_bound(keyed, low=False)
        if lo is not None and lo < self.min:
            self.min = lo
        if hi is not None and hi > self.max:
            self.max = hi
        if t >= self.last_t and total is not None:
            self.last = total / count
            self.last_t = t
        self.sketch.merge(keyed)

    def merge(self, other: Cell) -> None:
        self.points += other.points
        self.count += other.count
        self.sum += other.sum
        self.unsummed += other.unsummed
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.last_t >= self.last_t:
            self.last = other.last
            self.last_t = other.last_t
        self.sketch.merge(other.sketch)

    def copy(self) -> Cell:
        clone = Cell()
        clone.points = self.points
        clone.count, clone.sum, clone.min, clone.max = self.count, self.sum, self.min, self.max
        clone.last, clone.last_t, clone.unsummed = self.last, self.last_t, self.unsummed
        clone.sketch = self.sketch.copy()
        return clone

    def to_entry(self, labels: dict[str, str], kind: str) -> tuple[dict[str, Any], bytes]:
        """The series' entry in a rollup's ``series`` map, and its sketch's bytes."""
        summary = Summary(
            count=self.count,
            sum=self.sum,
            min=self.min if math.isfinite(self.min) else None,
            max=self.max if math.isfinite(self.max) else None,
            last=self.last,
            last_t=self.last_t,
            unsummed=self.unsummed,
        )
        return series_entry(labels, kind, summary), self.sketch.to_bytes()

    @classmethod
    def from_entry(cls, entry: dict[str, Any], sketch: bytes | None) -> Cell:
        stored = Summary.of(entry)
        cell = cls()
        cell.count, cell.sum = stored.count, stored.sum
        cell.min = math.inf if stored.min is None else stored.min
        cell.max = -math.inf if stored.max is None else stored.max
        cell.last, cell.last_t, cell.unsummed = stored.last, stored.last_t, stored.unsummed
        cell.sketch = Sketch.from_bytes(sketch or b"")
        return cell


def _sketch_bound(sketch: Sketch, *, low: bool) -> float | None:
    keys = [k for k, w in sketch.pos.items() if w > 0]
    negs = [k for k, w in sketch.neg.items() if w > 0]
    if low:
        if negs:
            return -MAPPING.value(max(negs))
        if sketch.zero > 0:
            return 0.0
        return MAPPING.value(min(keys)) if keys else None
    if keys:
        return MAPPING.value(max(keys))
    if sketch.zero > 0:
        return 0.0
    return -MAPPING.value(min(negs)) if negs else None


# --- histograms into sketch keys --------------------------------------------------------------


def explicit_buckets_sketch(
    bounds: Sequence[float],
    counts: Sequence[int],
    minimum: float | None,
    maximum: float | None,
) -> Sketch:
    """Explicit buckets ``(b[i-1], b[i]]`` into the sketch, each at its midpoint (clamped to the
    point's min and max when given). Quantiles are then only as good as the bucket bounds: the
    error is at most half the width of the bucket holding the quantile."""
    sketch = Sketch()
    last = len(bounds)
    if not bounds and (minimum is None or maximum is None):
        # One bucket, (-inf, +inf), and no min/max: nothing says where its values lie (placed at
        # 0 they answered p95 = max = 0). Count and sum stay exact; percentiles have no answer.
        return sketch
    for i, count in enumerate(counts):
        if not count:
            continue
        lo = bounds[i - 1] if i > 0 else (minimum if minimum is not None else bounds[0] if bounds else 0.0)
        hi = bounds[i] if i < last else (maximum if maximum is not None else bounds[-1] if bounds else 0.0)
        if minimum is not None:
            lo, hi = max(lo, minimum), max(hi, minimum)
        if maximum is not None:
            lo, hi = min(lo, maximum), min(hi, maximum)
        sketch.add((lo + hi) / 2.0, float(count))
    return sketch


_exp_key_cache: dict[tuple[int, int], int] = {}


def _exp_key(scale: int, index: int) -> int:
    """DDSketch key of the geometric middle of exponential bucket ``index`` at ``scale``:
    (base^index, base^(index+1)] with base = 2^(2^-scale)."""
    cached = _exp_key_cache.get((scale, index))
    if cached is None:
        # Clamped to the float range: at negative scales a large index is beyond any double.
        exponent = min(1023.0, max(-1074.0, (index + 0.5) * 2.0**-scale))
        middle = 2.0**exponent
        cached = MAPPING.key(middle)
        if len(_exp_key_cache) < 200_000:
            _exp_key_cache[(scale, index)] = cached
    return cached


def exponential_buckets_sketch(
    scale: int,
    zero_count: float,
    positive: tuple[int, Sequence[int]],
    negative: tuple[int, Sequence[int]],
) -> Sketch:
    """Exponential histogram buckets into the sketch. At the SDKs' usual scales (>= 3, base <=
    1.09) the bucket's geometric middle is within (sqrt(base) - 1) of every value in it; at scale
    >= 6 that is under 0.55%, so quantiles stay within about 1.5% of exact."""
    sketch = Sketch()
    offset, counts = positive
    for i, count in enumerate(counts):
        if count:
            key = _exp_key(scale, offset + i)
            sketch.pos[key] = sketch.pos.get(key, 0.0) + float(count)
    offset, counts = negative
    for i, count in enumerate(counts):
        if count:
            key = _exp_key(scale, offset + i)
            sketch.neg[key] = sketch.neg.get(key, 0.0) + float(count)
    sketch.zero += float(zero_count)
    return sketch


# --- the batch --------------------------------------------------------------------------------


@dataclass(slots=True)
class CumulativePoint:
    """One cumulative data point of one stream, to be turned into an increment in the transaction."""

    shape: str  # "sum", "histogram", "exp_histogram"
    start: int
    time: int
    value: float = 0.0
    count: int = 0
    total: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    bounds: tuple[float, ...] = ()
    buckets: tuple[int, ...] = ()
    scale: int = 0
    zero_count: int = 0
    positive: tuple[int, tuple[int, ...]] = (0, ())
    negative: tuple[int, tuple[int, ...]] = (0, ())


@dataclass(slots=True)
class SeriesBatch:
    metric: str
    sid: str
    labels: dict[str, str]
    kind: str  # "gauge", "sum", "histogram"
    minutes: dict[int, Cell] = field(default_factory=dict)  # minute index (epoch // 60) -> cell
    # stream id -> its cumulative points in time order
    streams: dict[str, list[CumulativePoint]] = field(default_factory=dict)
    # stream id -> its origin (``labels.origin_id``: the resource and scope that sent it)
    origins: dict[str, str] = field(default_factory=dict)
    points: int = 0

    @classmethod
    def new(cls, metric: str, sid: str, labels: dict[str, str], kind: str) -> SeriesBatch:
        """An empty series: the hot path's constructor (an SDK export makes one per point),
        ~0.4 us faster than the generated ``__init__`` with its default factories."""
        series = object.__new__(cls)
        series.metric, series.sid, series.labels, series.kind = metric, sid, labels, kind
        series.minutes, series.streams, series.origins, series.points = {}, {}, {}, 0
        return series

    def cell(self, t: int) -> Cell:
        minute = t // MINUTE_NANOS
        cell = self.minutes.get(minute)
        if cell is None:
            cell = self.minutes[minute] = Cell()
        return cell


@dataclass
class MetricInfo:
    name: str
    kind: str
    unit: str = ""
    description: str = ""


@dataclass
class Batch:
    series: dict[str, SeriesBatch] = field(default_factory=dict)  # sid -> series
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)  # (metric, reason) -> points
    accepted: int = 0
    min_t: int = 0
    max_t: int = 0
    senders: set[str] = field(default_factory=set)  # the resources that sent it (``writer.py``)
    # sid -> its bucket, set by ``series_registry.register_series`` for every series kept (the
    # instance's cache of buckets is bounded and may have forgotten some by the time of writing).
    buckets: dict[str, int] = field(default_factory=dict)
    # Points of customer usage metrics refused before their series existed (late, NaN...), per
    # customer and day: marked in the customer usage store so the customer is not scored idle.
    customer_refusals: dict[tuple[str, date], int] = field(default_factory=dict)

    def reject(self, metric: str, reason: str, points: int = 1) -> None:
        key = (metric, reason)
        self.rejected[key] = self.rejected.get(key, 0) + points

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def rejection_message(self, limit: int = 10) -> str:
        parts = [
            f"{metric or '(unnamed)'}: {reason} ({n} point{'s' if n != 1 else ''})"
            for (metric, reason), n in sorted(self.rejected.items())
        ]
        more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
        return "; ".join(parts[:limit]) + more

    def summary(self) -> Batch:
        """The batch without its points (what was accepted and refused): what outlives storing."""
        return Batch(
            metrics=self.metrics,
            rejected=self.rejected,
            customer_refusals=self.customer_refusals,
            accepted=self.accepted,
            min_t=self.min_t,
            max_t=self.max_t,
        )

    def saw(self, t: int) -> None:
        if not self.min_t or t < self.min_t:
            self.min_t = t
        self.max_t = max(self.max_t, t)

    def span(self) -> tuple[datetime, datetime]:
        """The times of its first and last accepted points."""
        return datetime.fromtimestamp(self.min_t / NANOS, UTC), datetime.fromtimestamp(
            self.max_t / NANOS, UTC
        )
