"""The query semantics apart from the store (``shared.metrics.query`` describes them): ``Fold``
(filters, grouping, steps, the answer) and ``Accumulator`` (every aggregation). The query API folds
the rollups with them, the alert replay its in-memory points."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.metrics.query_model import QUANTILES, QueryError, Series
from shared.metrics.sketch import Sketch
from shared.metrics.store import Summary


def quantile(ordered: Sequence[float], q: float) -> float:
    """The exact quantile of sorted values at rank ``q*(n-1)``, interpolated: what the sketch
    answers within 1%."""
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Accumulator:
    """One step of one series: rollup entries (``add``) or raw samples (``add_samples``, which
    keeps the values, so quantiles are exact) folded into every aggregation."""

    count: float = 0.0
    sum: float = 0.0
    rate_num: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    sketch: Sketch | None = None
    samples: list[float] | None = None
    seen: bool = False
    # Observations whose sum is unknown (histogram points sent without their optional sum).
    unsummed: float = 0.0

    def add(self, doc: dict[str, Any], sketch: Sketch | None) -> None:
        summary = Summary.of(doc)
        self.count += summary.count
        self.sum += summary.sum
        self.unsummed += summary.unsummed
        self.rate_num += summary.sum if doc.get("kind") == "sum" else summary.count
        if summary.min is not None:
            self.min = min(self.min, summary.min)
        if summary.max is not None:
            self.max = max(self.max, summary.max)
        if sketch is not None:
            if self.sketch is None:
                self.sketch = Sketch()
            self.sketch.merge(sketch)
        self.seen = True

    def add_counter(self, value: float) -> None:
        """A stored counter's increments over a bucket (their number is not kept: sum and rate only)."""
        self.sum += value
        self.rate_num += value
        self.seen = True

    def add_samples(self, values: Sequence[float], *, increment: bool) -> None:
        """Raw samples; ``increment``: a sum's data points (its rate is of values, not of samples)."""
        if not values:
            return
        self.count += len(values)
        total = sum(values)
        self.sum += total
        self.rate_num += total if increment else len(values)
        self.min = min(self.min, *values)
        self.max = max(self.max, *values)
        if self.samples is None:
            self.samples = []
        self.samples.extend(values)
        self.seen = True

    def value(self, agg: str, seconds: float) -> float | None:
        if agg == "count":
            return self.count
        if agg in UNKNOWN_WITHOUT_SUM and self.unsummed:
            return None  # the sum of some observations was never sent: no answer, not a wrong one
        if agg == "sum":
            return self.sum
        if agg == "rate":
            return self.rate_num / seconds
        if not self.seen:
            return None
        if agg == "avg":
            return self.sum / self.count if self.count else None
        if agg == "min":
            return self.min if math.isfinite(self.min) else None
        if agg == "max":
            return self.max if math.isfinite(self.max) else None
        if self.samples:
            return quantile(sorted(self.samples), QUANTILES[agg])
        return self.sketch.quantile(QUANTILES[agg]) if self.sketch is not None else None


# Aggregations a step has no value for when a histogram point in it came without its sum.
UNKNOWN_WITHOUT_SUM = ("sum", "avg")
# Aggregations whose steps without data are 0 (in a series with data in the window).
ZERO_FILLED = ("count", "sum", "rate")


def unknown_sum_note(agg: str, steps: int) -> str:
    """Why ``steps`` steps have no ``agg`` (the answer's ``notes``)."""
    return (
        f"{agg} left out of {steps} step{'s' if steps != 1 else ''}: histogram points there were "
        "sent without their sum (optional in OTLP), so the sum is unknown; count, rate and "
        "percentiles are answered"
    )


@dataclass
class Group:
    """One output series being aggregated: its labels and its steps' accumulators."""

    labels: dict[str, str]
    steps: dict[int, Accumulator] = field(default_factory=dict)


class Fold:
    """The series of one query being aggregated, wherever the data comes from (the rollups here,
    the alert replay's in-memory points): label filters, grouping, steps, and the answer."""

    def __init__(  # noqa: PLR0917 - a query's fields
        self,
        agg: str,
        start: datetime,
        end: datetime,
        step: int | None,
        labels: Mapping[str, str],
        group_by: Iterable[str],
        across: str | None = None,
        step_zone: str | None = None,
    ) -> None:
        self.agg, self.start, self.end, self.step = agg, start, end, step
        # Each step's start: every ``step`` seconds, or each local midnight in ``step_zone``.
        self.step_starts = local_day_starts(start, end, step_zone) if step_zone and step else None
        self.filters = dict(labels)
        self.keep = sorted(set(self.filters) | set(group_by))
        self.across = across
        # With ``across``, a group is one stored series (all its labels); ``outputs`` are the
        # output series they are combined into.
        self.groups: dict[tuple[tuple[str, str], ...], Group] = {}
        self.outputs: set[tuple[tuple[str, str], ...]] = set()
        # Folding rollups: their length, and the time their last bucket fills up to (``covered``).
        self.bucket_seconds: int | None = None
        self.now: datetime | None = None
        # Why some steps have no value (``series()`` fills it; the answer's ``notes``).
        self.notes: list[str] = []

    def output_count(self) -> int:
        return len(self.outputs) if self.across else len(self.groups)

    def accepts(self, labels: Mapping[str, str]) -> bool:
        """Equality filters, as Prometheus' matchers: every filter label with its value; an empty
        value matches a series without the label."""
        return all(labels.get(k, "") == v for k, v in self.filters.items())

    def group(self, labels: Mapping[str, str]) -> Group:
        """The output series ``labels`` fall in (the filter and group_by labels kept, the others
        aggregated away)."""
        kept = {k: labels[k] for k in self.keep if k in labels}
        key = tuple(sorted((labels if self.across else kept).items()))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(dict(labels) if self.across else kept)
            if self.across:
                self.outputs.add(tuple(sorted(kept.items())))
        return group

    def accumulator(self, labels: Mapping[str, str], index: int, max_series: int | None) -> Accumulator:
        """The step ``index`` of the output series ``labels`` fall in; a ``QueryError`` once the
        answer would hold more than ``max_series`` series."""
        steps = self.group(labels).steps
        if max_series is not None and self.output_count() > max_series:
            raise QueryError(
                f"the query matches more than {max_series} series, the most one answer "
                "holds: filter with label.<name>=<value> or group by fewer labels",
                field="by",
            )
        acc = steps.get(index)
        if acc is None:
            acc = steps[index] = Accumulator()
        return acc

    def index(self, offset: float) -> int:
        """The step holding a bucket that starts ``offset`` seconds into the window."""
        if self.step_starts is not None:
            return bisect_right(self.step_starts, self.start + timedelta(seconds=offset)) - 1
        return int(offset // self.step) if self.step else 0

    def series(self) -> list[Series]:
        spans = self._spans()
        # With ``across``, a stored series without data in a step is absent from that step's
        # reduction (Prometheus' ``avg by``, Cloud Monitoring's reducers), not a 0 in it.
        fill_zero = self.agg in ZERO_FILLED and not self.across
        out: list[Series] = []
        # Per series (index in ``out``): the steps whose value is unknown (no sum), not absent.
        unknown: dict[int, set[datetime]] = {}
        for key in sorted(self.groups):
            group = self.groups[key]
            points: list[tuple[datetime, float]] = []
            for index, (step_start, seconds) in enumerate(spans):
                acc = group.steps.get(index)
                if acc is None:
                    if not fill_zero:
                        continue
                    acc = Accumulator()
                value = acc.value(self.agg, self.covered(step_start, seconds))
                if value is not None:
                    points.append((step_start, value))
                elif acc.unsummed:
                    unknown.setdefault(len(out), set()).add(step_start)
            # Built here from stored numbers: nothing to validate (the replay asks thousands a cycle).
            out.append(Series.model_construct(labels=group.labels, points=points))
        if not self.across:
            if unknown:
                self.notes.append(unknown_sum_note(self.agg, sum(len(s) for s in unknown.values())))
            return out
        return self._combined(out, unknown, [at for at, _ in spans])

    def covered(self, at: datetime, seconds: float) -> float:
        """The seconds a rate is over: those the buckets starting in the step ``[at, at + seconds)``
        hold, from the first one's start to the last one's end (``now`` while it fills). A window
        ending at 12:00:30 on minute rollups holds 11:56 to 12:00:30, not five minutes; one ending
        at 10:01:30 in the past holds the whole 10:01 minute."""
        size = self.bucket_seconds
        if not size:
            return seconds
        begin = at.timestamp()
        first = math.ceil(begin / size) * size
        last_end = math.ceil((begin + seconds) / size) * size
        if self.now is not None:
            last_end = min(last_end, self.now.timestamp())
        return last_end - first if last_end > first else seconds

    def _spans(self) -> list[tuple[datetime, float]]:
        """Each step's start and length in seconds (the last may be short)."""
        if self.step_starts is not None:
            ends = [*self.step_starts[1:], self.end]
            return [
                (at, (until - at).total_seconds()) for at, until in zip(self.step_starts, ends, strict=True)
            ]
        window_seconds = (self.end - self.start).total_seconds()
        step_seconds = float(self.step) if self.step else window_seconds
        n_steps = math.ceil(window_seconds / self.step) if self.step else 1
        spans: list[tuple[datetime, float]] = []
        for index in range(n_steps):
            step_start = self.start + timedelta(seconds=index * (self.step or 0))
            step_end = min(self.end, step_start + timedelta(seconds=step_seconds))
            spans.append((step_start, (step_end - step_start).total_seconds()))
        return spans

    def _combined(
        self, per_series: list[Series], unknown: dict[int, set[datetime]], step_starts: list[datetime]
    ) -> list[Series]:
        """Each output group's series combined step by step with ``across``, over the series with
        a value in the step; a step where one of them has an unknown value (no sum) has none.
        ``across=sum`` of a count, sum or rate is 0 in a step where none has data, as without
        ``across``."""
        combine = {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v)}[self.across or "sum"]
        grouped: dict[tuple[tuple[str, str], ...], dict[datetime, list[float]]] = {}
        unknown_steps: dict[tuple[tuple[str, str], ...], set[datetime]] = {}
        for index, series in enumerate(per_series):
            kept = tuple(sorted((k, v) for k, v in series.labels.items() if k in self.keep))
            steps = grouped.setdefault(kept, {})
            for at, value in series.points:
                steps.setdefault(at, []).append(value)
            unknown_steps.setdefault(kept, set()).update(unknown.get(index, ()))
        fill_zero = self.agg in ZERO_FILLED and self.across == "sum"
        out: list[Series] = []
        for key in sorted(grouped):
            steps, unknown_here = grouped[key], unknown_steps[key]
            points: list[tuple[datetime, float]] = []
            for at in step_starts if fill_zero else sorted(steps):
                values = steps.get(at, [])
                if at not in unknown_here and (values or fill_zero):
                    points.append((at, float(combine(values)) if values else 0.0))
            out.append(Series.model_construct(labels=dict(key), points=points))
        left_out = sum(len(steps) for steps in unknown_steps.values())
        if left_out:
            self.notes.append(unknown_sum_note(self.agg, left_out))
        return out


def local_day_starts(start: datetime, end: datetime, zone_name: str) -> list[datetime]:
    """The window's start then each local midnight in ``zone_name`` before ``end`` (in UTC):
    steps of one calendar day there, 23 to 25 hours long."""
    zone = ZoneInfo(zone_name)
    starts = [start]
    day = start.astimezone(zone).date() + timedelta(days=1)
    while (midnight := datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)) < end:
        starts.append(midnight)
        day += timedelta(days=1)
    return starts
