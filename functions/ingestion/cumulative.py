"""Cumulative OTLP streams into increments, with restarts detected.

A stream (metric, every resource attribute, scope, data point attributes) keeps its last point in
``metric_streams/{stream}``. Inside the write transaction each new point is compared with it:

- first point of a stream with a ``start_time_unix_nano``: the whole value is the increment since
  that start (an SDK's first export carries everything counted since the process started), when
  that start lies within the lateness allowance (``ION_METRICS_MAX_AGE_SECONDS``) before the
  point; a start older than that (a Collector or Cloud Monitoring series counting for days, a
  stream forgotten and seen again) or no start time only sets the baseline, as Prometheus' first
  sample does: days of counts in one minute would read as a spike, and counted twice where they
  were stored before;
- same start, later time: the difference (per bucket for histograms); a decrease is refused
  ("cumulative value decreased without a new start_time"), except when the stream has no start
  time at all, where a decrease can only mean a restart;
- a later start time: a restart, the whole new value is the increment (within the allowance, as
  above);
- the stream's last point again (same time, start and values: a retry that re-batched it): a
  duplicate, skipped, not refused;
- an earlier start time, or a time not after the last one: refused (late or repeated point).

Exponential histograms whose scale changed are compared at the smaller scale (buckets merged
pairwise as the SDKs do when they downscale).
"""

from __future__ import annotations

from typing import Any

from functions.ingestion.aggregate import (
    Cell,
    CumulativePoint,
    SeriesBatch,
    explicit_buckets_sketch,
    exponential_buckets_sketch,
)


def _state(point: CumulativePoint) -> dict[str, Any]:
    state: dict[str, Any] = {"shape": point.shape, "start": point.start, "time": point.time}
    if point.shape == "sum":
        state["value"] = point.value
    else:
        state.update(count=point.count, total=point.total, minimum=point.minimum, maximum=point.maximum)
    if point.shape == "histogram":
        state.update(bounds=list(point.bounds), buckets=list(point.buckets))
    elif point.shape == "exp_histogram":
        state.update(
            scale=point.scale,
            zero_count=point.zero_count,
            pos_offset=point.positive[0],
            pos=list(point.positive[1]),
            neg_offset=point.negative[0],
            neg=list(point.negative[1]),
        )
    return state


def _point(state: dict[str, Any]) -> CumulativePoint:
    return CumulativePoint(
        shape=state["shape"],
        start=int(state["start"]),
        time=int(state["time"]),
        value=float(state.get("value", 0.0)),
        count=int(state.get("count", 0)),
        total=state.get("total"),
        minimum=state.get("minimum"),
        maximum=state.get("maximum"),
        bounds=tuple(state.get("bounds", ())),
        buckets=tuple(state.get("buckets", ())),
        scale=int(state.get("scale", 0)),
        zero_count=int(state.get("zero_count", 0)),
        positive=(int(state.get("pos_offset", 0)), tuple(state.get("pos", ()))),
        negative=(int(state.get("neg_offset", 0)), tuple(state.get("neg", ()))),
    )


def _downscaled(offset: int, counts: tuple[int, ...], by: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, count in enumerate(counts):
        if count:
            index = (offset + i) >> by
            out[index] = out.get(index, 0) + count
    return out


def _dense(buckets: dict[int, int]) -> tuple[int, list[int]]:
    if not buckets:
        return 0, []
    low, high = min(buckets), max(buckets)
    return low, [buckets.get(i, 0) for i in range(low, high + 1)]


def _add_whole(cell: Cell, point: CumulativePoint) -> None:
    if point.shape == "sum":
        cell.add_increment(point.value, point.time)
    elif point.shape == "histogram":
        keyed = explicit_buckets_sketch(point.bounds, point.buckets, point.minimum, point.maximum)
        cell.add_distribution(point.count, point.total, point.minimum, point.maximum, keyed, point.time)
    else:
        keyed = exponential_buckets_sketch(point.scale, point.zero_count, point.positive, point.negative)
        cell.add_distribution(point.count, point.total, point.minimum, point.maximum, keyed, point.time)


def _add_difference(cell: Cell, prev: CumulativePoint, point: CumulativePoint) -> str | None:
    """Add ``point - prev`` to ``cell``; the reason it is refused otherwise."""
    decreased = "cumulative value decreased without a new start_time"
    if point.shape == "sum":
        delta = point.value - prev.value
        if delta < 0:
            return decreased
        cell.add_increment(delta, point.time)
        return None
    count = point.count - prev.count
    if count < 0:
        return decreased
    # A sum missing from either point (it is optional in OTLP) leaves the increment's unknown.
    total = None if point.total is None or prev.total is None else point.total - prev.total
    # Lifetime min/max say something about this interval only when they moved.
    minimum = point.minimum if point.minimum is not None and point.minimum != prev.minimum else None
    maximum = point.maximum if point.maximum is not None and point.maximum != prev.maximum else None
    if point.shape == "histogram":
        if point.bounds != prev.bounds or len(point.buckets) != len(prev.buckets):
            return "explicit_bounds changed without a new start_time"
        buckets = tuple(a - b for a, b in zip(point.buckets, prev.buckets, strict=True))
        if any(b < 0 for b in buckets):
            return decreased
        low = point.minimum if minimum is None else minimum
        high = point.maximum if maximum is None else maximum
        keyed = explicit_buckets_sketch(point.bounds, buckets, low, high)
    else:
        scale = min(point.scale, prev.scale)
        diffs = []
        for new, old in ((point.positive, prev.positive), (point.negative, prev.negative)):
            now_b = _downscaled(new[0], new[1], point.scale - scale)
            was_b = _downscaled(old[0], old[1], prev.scale - scale)
            diff = {i: now_b.get(i, 0) - was_b.get(i, 0) for i in set(now_b) | set(was_b)}
            if any(v < 0 for v in diff.values()):
                return decreased
            diffs.append(_dense({i: v for i, v in diff.items() if v}))
        zero = point.zero_count - prev.zero_count
        if zero < 0:
            return decreased
        keyed = exponential_buckets_sketch(scale, zero, diffs[0], diffs[1])
    cell.add_distribution(count, total, minimum, maximum, keyed, point.time)
    return None


def resolve(
    series: SeriesBatch,
    states: dict[str, dict[str, Any] | None],
    minute_of: Any,
    whole_within_ns: int | None = None,
) -> tuple[dict[int, Cell], dict[str, dict[str, Any]], list[str]]:
    """The series' cells with its cumulative streams' increments added (new objects; the batch is
    left as it was, since a transaction may run this again), the streams' new states, and one
    reason per refused point. A stream's first point (or a restart's) counts whole only when its
    start lies at most ``whole_within_ns`` before it (None: always)."""
    cells = {minute: cell.copy() for minute, cell in series.minutes.items()}
    new_states: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    for stream, points in series.streams.items():
        stored = states.get(stream)
        prev = _point(stored) if stored else None
        for point in sorted(points, key=lambda p: p.time):
            minute = minute_of(point.time)
            cell = cells.get(minute)
            if cell is None:
                cell = Cell()
            reason = None
            if prev is None or (point.start > prev.start and prev.start != 0):
                recent = whole_within_ns is None or point.time - point.start <= whole_within_ns
                if point.start > 0 and recent:
                    _add_whole(cell, point)
            elif point == prev:
                continue  # the stream's last point again (a re-batched retry): counted, not refused
            elif prev.shape != point.shape:
                reason = f"stream changed from {prev.shape} to {point.shape}"
            elif point.start < prev.start:
                reason = (
                    "start_time is older than the stream's current start (late point of a restarted stream)"
                )
            elif point.time <= prev.time:
                reason = "point is not newer than the stream's last point (out of order or repeated)"
            else:
                reason = _add_difference(cell, prev, point)
                if reason is not None and point.start == 0:
                    reason = None  # no start time: a decrease can only be a restart
                    _add_whole(cell, point)
            if reason is not None:
                refused.append(reason)
                continue
            if cell.count or minute in cells:
                cells[minute] = cell
            prev = point
        if prev is not None and (stored is None or prev.time != int(stored["time"])):
            new_states[stream] = _state(prev)
    return cells, new_states, refused
