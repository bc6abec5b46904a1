"""``GET /v1/query``'s parameters and answer, and the bound on the answer's size (no HTTP: the
handler in ``main.py`` turns what is refused here into a 422).

A query answers ``series x steps`` points (~40 bytes of JSON each). Bounding the window
(``ION_QUERY_MAX_WINDOW_DAYS``) and the series (``ION_QUERY_MAX_SERIES``) leaves their product
unbounded: 1,000 series at a minute step over 72 h would be 4.3 M points, ~200 MB, past the
platform's 32 MiB answer and the instance's memory. ``ION_QUERY_MAX_POINTS`` bounds it: the more
steps a series has, the fewer series one answer holds."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.metrics.query_model import Across, Agg

QUERY_PARAMS = ("metric", "agg", "start", "end", "step", "by", "resolution", "across")


class QueryParams(BaseModel):
    """``GET /v1/query``'s parameters; ``label.<name>=<value>`` (any number) filter by a label."""

    model_config = ConfigDict(extra="allow")

    metric: str = Field(
        min_length=1, max_length=255, description="a metric name, e.g. http.server.request.duration"
    )
    agg: Agg
    start: str = Field(max_length=64, description="an RFC 3339 time with a zone, e.g. 2026-03-02T08:00:00Z")
    end: str = Field(max_length=64, description="an RFC 3339 time with a zone, after start")
    step: int | None = Field(
        default=None,
        gt=0,
        description="seconds per point (default: one point); series x steps at most ION_QUERY_MAX_POINTS",
    )
    by: str | None = Field(default=None, max_length=1000, description="labels to group by, comma separated")
    resolution: Literal["auto", "minute", "hour"] | None = None
    across: Across | None = Field(
        default=None,
        description="combine each group's series after aggregating each over time (sum, avg, min, max)",
    )


class QueryAnswer(BaseModel):
    metric: str
    agg: str
    resolution: str
    series: list[dict[str, Any]] = Field(description='[{"labels": {...}, "points": [[RFC 3339, number]]}]')
    notes: list[str] = Field(default=[], description="why some steps have no value (absent when none)")


def steps_of(start: datetime, end: datetime, step: int | None) -> int:
    """The points one series of the answer holds at most: one per step, one without a step."""
    return math.ceil((end - start).total_seconds() / step) if step else 1


def series_cap(steps: int, max_series: int, max_points: int) -> int:
    """The series one answer may hold: at most ``max_series``, and ``max_points`` in all."""
    return min(max_series, max_points // steps)


def least_step(start: datetime, end: datetime, step: int, max_points: int) -> int:
    """The least step (whole minutes, or hours for an hour step) at which one series of the window
    holds at most ``max_points`` points."""
    unit = 3600 if step % 3600 == 0 else 60
    return math.ceil((end - start).total_seconds() / max_points / unit) * unit


def too_many_points(steps: int, cap: int, max_points: int, least: int) -> str:
    """Why an answer of ``steps`` points a series, more than ``cap`` series, is refused; ``least``
    the step at which one series fits."""
    if cap < 1:
        return (
            f"the answer would hold more than {max_points} points (ION_QUERY_MAX_POINTS): one series "
            f"alone is {steps} points; use a step of at least {least} s or a shorter window"
        )
    return (
        f"the answer would hold more than {max_points} points (ION_QUERY_MAX_POINTS): "
        f"{steps} steps a series allow at most {cap} series; use a larger step or a shorter "
        "window, filter with label.<name>=<value> or group by fewer labels"
    )
