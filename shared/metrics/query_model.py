"""The query API's request and answer (``MetricQuery``, ``QueryResult``), its aggregations and
the error it answers with; what they mean is ``shared.metrics.query``'s docstring."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shared.clock import iana_time_zone

Agg = Literal["count", "sum", "rate", "avg", "min", "max", "p50", "p90", "p95", "p99"]
Across = Literal["sum", "avg", "min", "max"]
AGGREGATIONS: tuple[str, ...] = get_args(Agg)
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
MAX_POINTS = 11_000
DAY_STEP = 86_400


# Times a query may name: anything outside cannot hold data and would overflow date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class QueryError(ValueError):
    """A query that cannot be answered as asked (the HTTP API answers it 422), naming the
    parameter at fault in ``field``."""

    def __init__(self, message: str, field: str = "step") -> None:
        super().__init__(message)
        self.field = field


class TooManyDocuments(QueryError):
    """A window whose rollups are more documents than the caller allows one query to read (a
    metric of many series fills a rollup document per 100 series, every minute or hour)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the window reads more than {limit} rollup documents, the most one query reads: "
            "this metric's series fill many rollups each minute or hour; shorten the window "
            "(or, within the last 72 h, ask resolution=hour: an hour is one rollup, not 60)",
            field="start",
        )
        self.limit = limit


class MetricQuery(BaseModel):
    metric: str = Field(min_length=1, max_length=255)
    agg: Agg
    start: AwareDatetime
    end: AwareDatetime
    step: int | None = Field(default=None, gt=0, description="seconds; None = one point for the window")
    labels: dict[str, str] = {}
    group_by: list[str] = []
    resolution: Literal["auto", "minute", "hour"] = "auto"
    across: Across | None = Field(
        default=None, description="combine the series of a group after aggregating each over time"
    )
    # A report's month charted per day in the reader's zone: a day there is 23 to 25 hours long,
    # which a fixed step of 86400 s drifts from by an hour after each DST change.
    step_zone: str | None = Field(
        default=None,
        max_length=64,
        description="with step 86400: each step is a calendar day in this IANA time zone",
    )

    @model_validator(mode="after")
    def _window(self) -> MetricQuery:
        for name, at in (("start", self.start), ("end", self.end)):
            if not EARLIEST <= at < LATEST:
                raise ValueError(
                    f"{name} {at.isoformat()} is out of range: times from {EARLIEST:%Y-%m-%d} "
                    f"to before {LATEST:%Y-%m-%d} are allowed"
                )
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.step_zone is not None:
            if self.step != DAY_STEP:
                raise ValueError(f"step_zone needs step {DAY_STEP} (a calendar day)")
            try:
                iana_time_zone(self.step_zone)
            except ValueError:
                raise ValueError(f"step_zone {self.step_zone!r} is not an IANA time zone") from None
        if self.step is not None:
            points = math.ceil((self.end - self.start).total_seconds() / self.step)
            if points > MAX_POINTS:
                raise ValueError(f"{points} points asked; at most {MAX_POINTS} per series (raise step)")
        return self


class Series(BaseModel):
    labels: dict[str, str]
    points: list[tuple[AwareDatetime, float]]


class QueryResult(BaseModel):
    metric: str
    agg: str
    series: list[Series]
    resolution: str = "minute"
    # Why steps a caller might expect have no value (e.g. a sum the sender never sent).
    notes: list[str] = []
