"""One adapter per OTLP point shape that is aggregated by time (sum, histogram, exponential
histogram): what refuses a point, how a delta point goes into its minute's cell, and what a
cumulative point keeps for its stream. ``points._points`` is the one loop that uses them."""

from __future__ import annotations

import math
from math import isfinite
from typing import Any, Protocol

from functions.ingestion.aggregate import (
    Cell,
    CumulativePoint,
    explicit_buckets_sketch,
    exponential_buckets_sketch,
)
from functions.ingestion.wire import bounds_valid, histogram_arrays

DELTA, CUMULATIVE = 1, 2
MIN_EXP_SCALE, MAX_EXP_SCALE = -10, 20


# Repeated fields are read as ``tuple(dp.field[:])``: protobuf's slice copies in C, about 2.5 times
# faster than iterating the container.


def _optional(dp: Any, field: str) -> float | None:
    return float(getattr(dp, field)) if dp.HasField(field) else None


def _finite_problem(total: float | None, minimum: float | None, maximum: float | None) -> str | None:
    for label, value in (("sum", total), ("min", minimum), ("max", maximum)):
        if value is not None and not math.isfinite(value):
            return f"{label} is {value} (NaN and infinities are refused)"
    if minimum is not None and maximum is not None and minimum > maximum:
        return "min is greater than max"
    return None


# Explicit bounds seen, and whether they are valid: an SDK sends the same few bounds on every point.
_bounds_checked: dict[tuple[float, ...], bool] = {}


def _bounds_valid(bounds: tuple[float, ...]) -> bool:
    valid = _bounds_checked.get(bounds)
    if valid is None:
        valid = bounds_valid(bounds)
        if len(_bounds_checked) >= 1000:
            _bounds_checked.clear()
        _bounds_checked[bounds] = valid
    return valid


def _histogram_problem(  # noqa: PLR0917
    count: int,
    total: float | None,
    minimum: float | None,
    maximum: float | None,
    bounds: tuple[float, ...],
    buckets: tuple[int, ...],
) -> str | None:
    problem = _finite_problem(total, minimum, maximum)
    if problem:
        return problem
    if buckets and len(buckets) != len(bounds) + 1:
        return f"{len(buckets)} bucket_counts for {len(bounds)} explicit_bounds (needs bounds + 1)"
    if not _bounds_valid(bounds):
        return "explicit_bounds must be finite and strictly increasing"
    if buckets and sum(buckets) != count:
        return f"bucket_counts add up to {sum(buckets)} but count is {count}"
    return None


class Shape(Protocol):
    """What one kind of OTLP point adds to the loop in ``_points``."""

    kind: str  # the series kind it is stored as

    def problem(self, dp: Any) -> str | None:
        """Why the point is refused (after the checks every point gets), or None."""

    def add(self, cell: Cell, dp: Any, t: int) -> None:
        """A delta point into the minute's cell."""

    def checked(self, dp: Any, t: int) -> CumulativePoint | str:
        """The cumulative point (resolved against its stream's previous one when stored), or why
        it is refused (``problem``), reading the point once."""


def number_value(dp: Any) -> float:
    return dp.as_double if dp.WhichOneof("value") == "as_double" else float(dp.as_int)


class SumShape:
    kind = "sum"

    def __init__(self, monotonic: bool, temporality: int) -> None:
        self.monotonic = monotonic
        self.temporality = temporality

    def problem(self, dp: Any) -> str | None:
        if dp.WhichOneof("value") is None:
            return "data point has no value"
        value = number_value(dp)
        if not math.isfinite(value):
            return f"value is {value} (NaN and infinities are refused)"
        if self.monotonic and value < 0:
            return (
                "negative increment of a monotonic sum"
                if self.temporality == DELTA
                else "negative cumulative value of a monotonic sum"
            )
        return None

    def add(self, cell: Cell, dp: Any, t: int) -> None:
        cell.add_increment(number_value(dp), t)

    def checked(self, dp: Any, t: int) -> CumulativePoint | str:
        which = dp.WhichOneof("value")
        if which is None:
            return "data point has no value"
        value = dp.as_double if which == "as_double" else float(dp.as_int)
        if not isfinite(value) or (self.monotonic and value < 0):
            return self.problem(dp) or "refused"
        return CumulativePoint("sum", dp.start_time_unix_nano, t, value)


def _extremes(dp: Any) -> tuple[float | None, float | None, float | None]:
    return _optional(dp, "sum"), _optional(dp, "min"), _optional(dp, "max")


class HistogramShape:
    """Explicit-bucket histograms, their arrays read by ``wire.histogram_arrays``."""

    kind = "histogram"

    def problem(self, dp: Any) -> str | None:
        arrays = histogram_arrays(dp)
        if isinstance(arrays, str):
            return arrays
        total, minimum, maximum = _extremes(dp)
        return _histogram_problem(dp.count, total, minimum, maximum, arrays[0], arrays[1])

    def add(self, cell: Cell, dp: Any, t: int) -> None:
        total, minimum, maximum = _extremes(dp)
        bounds, buckets, _ = histogram_arrays(dp)  # type: ignore[misc] - checked by problem() first
        keyed = explicit_buckets_sketch(bounds, buckets, minimum, maximum)
        cell.add_distribution(dp.count, total, minimum, maximum, keyed, t)

    def checked(self, dp: Any, t: int) -> CumulativePoint | str:
        # The hot path of every SDK's histograms: each field read once, the common case (finite
        # extremes, the bounds of an earlier point) decided without building a refusal.
        arrays = histogram_arrays(dp)
        if isinstance(arrays, str):
            return arrays
        bounds, buckets, valid = arrays
        has = dp.HasField
        total = dp.sum if has("sum") else None
        minimum = dp.min if has("min") else None
        maximum = dp.max if has("max") else None
        count = dp.count
        if not (
            (total is None or isfinite(total))
            and (minimum is None or maximum is None or minimum <= maximum)
            and (minimum is None or isfinite(minimum))
            and (maximum is None or isfinite(maximum))
            and valid
            and len(buckets) == len(bounds) + 1
            and sum(buckets) == count
        ):
            problem = _histogram_problem(count, total, minimum, maximum, bounds, buckets)
            if problem is not None:
                return problem
        return CumulativePoint(
            "histogram", dp.start_time_unix_nano, t, 0.0, count, total, minimum, maximum, bounds, buckets
        )


def _exp_buckets(dp: Any) -> tuple[tuple[int, tuple[int, ...]], tuple[int, tuple[int, ...]]]:
    return (
        (int(dp.positive.offset), tuple(dp.positive.bucket_counts[:])),
        (int(dp.negative.offset), tuple(dp.negative.bucket_counts[:])),
    )


class ExpHistogramShape:
    kind = "histogram"

    def problem(self, dp: Any) -> str | None:
        problem = _finite_problem(*_extremes(dp))
        if problem is None and not MIN_EXP_SCALE <= dp.scale <= MAX_EXP_SCALE:
            problem = f"scale {dp.scale} is outside {MIN_EXP_SCALE}..{MAX_EXP_SCALE}"
        if problem is None:
            positive, negative = _exp_buckets(dp)
            counted = dp.zero_count + sum(positive[1]) + sum(negative[1])
            if counted != dp.count:
                problem = f"zero_count and bucket_counts add up to {counted} but count is {dp.count}"
        return problem

    def add(self, cell: Cell, dp: Any, t: int) -> None:
        total, minimum, maximum = _extremes(dp)
        positive, negative = _exp_buckets(dp)
        keyed = exponential_buckets_sketch(dp.scale, dp.zero_count, positive, negative)
        cell.add_distribution(dp.count, total, minimum, maximum, keyed, t)

    def _cumulative(self, dp: Any, t: int) -> CumulativePoint:
        total, minimum, maximum = _extremes(dp)
        positive, negative = _exp_buckets(dp)
        return CumulativePoint(
            shape="exp_histogram",
            start=dp.start_time_unix_nano,
            time=t,
            count=dp.count,
            total=total,
            minimum=minimum,
            maximum=maximum,
            scale=dp.scale,
            zero_count=dp.zero_count,
            positive=positive,
            negative=negative,
        )

    def checked(self, dp: Any, t: int) -> CumulativePoint | str:
        return self.problem(dp) or self._cumulative(dp, t)


def temporality_problem(temporality: int) -> str | None:
    """Why a sum or histogram's temporality is refused, or None."""
    if temporality in (DELTA, CUMULATIVE):
        return None
    return "aggregation_temporality must be DELTA (1) or CUMULATIVE (2)"
