"""What a scaling decision reads and records: the region's state carried from one decision to the
next (stored in Firestore), the decision itself and the forecast it shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

if TYPE_CHECKING:
    from functions.scaling.forecast import Forecast

Binding = Literal[
    "forecast",
    "load",
    "floor",
    "rule-min",
    "rule-max",
    "tolerance",
    "stabilising",
    "step-limit",
    "guard-hold",
    "guard-revert",
]
MaxBinding = Literal["forecast", "rule-max", "load", "min", "tolerance", "guard-hold", "no-forecast"]


class Recommendation(BaseModel):
    at: AwareDatetime
    min: int


class PendingForecast(BaseModel):
    made_at: AwareDatetime
    point: float
    window_minutes: int = 60  # the span it forecast the peak of


class Live(BaseModel):
    """The service's min and max as read from it just before deciding."""

    min_instances: int
    max_instances: int


class Capacity(BaseModel):
    rpm: float  # requests per minute one instance serves at the CPU target
    source: Literal["learned", "configured", "replay"]
    samples: int = 0


class ForecastView(BaseModel):
    point: float
    lower: float
    upper: float
    hourly_mean: float
    peak_factor: float
    recent_peak: float
    method: str
    lags_days: list[int]
    level: float
    window_minutes: int = 60

    @classmethod
    def of(cls, fc: Forecast) -> ForecastView:
        return cls(**fc.__dict__)


class ScalingState(BaseModel):
    """What a region's decisions carry from one to the next (stored in Firestore per region).
    ``min/max_instances``, ``previous_*`` and ``changed_at`` are what was last *applied* (a dry
    run never writes them); the rest is learning that any decision adds to.

    Fields a newer version added are kept (``extra="allow"``): during a deploy an older instance
    writes the state back, and would otherwise erase what the newer one learned
    (``shared/compat.py``)."""

    model_config = ConfigDict(extra="allow")

    min_instances: int | None = None
    max_instances: int | None = None
    previous_min: int | None = None
    previous_max: int | None = None
    changed_at: AwareDatetime | None = None
    recommendations: list[Recommendation] = []
    pending: list[PendingForecast] = []  # forecasts whose window is not over yet
    errors: list[float] = []  # log(realised peak / forecast peak), newest last
    # The last refreshed forecast and the min it wanted (before bounds), reused by the decisions
    # between refreshes.
    forecast: ForecastView | None = None
    forecast_min: int | None = None
    forecast_at: AwareDatetime | None = None
    capacity: Capacity | None = None  # the capacity it was made with (the minutes between read no samples)
    # UTC hour -> its busiest minute, recorded from the per-minute reads once the hour is over:
    # the query API keeps minutes 72 h only, and the forecast wants 14 days of peaks.
    hourly_peaks: dict[AwareDatetime, float] = {}
    quarter_peaks: dict[AwareDatetime, float] = {}  # the same per quarter-hour
    # UTC hour -> mean requests/min over its served minutes, recorded the same way: exact where
    # the query API's hourly sums cannot tell how many minutes had data.
    hourly_means: dict[AwareDatetime, float] = {}

    def learned(self, other: ScalingState) -> ScalingState:
        """This state with ``other``'s learning (what a dry run keeps of its decision)."""
        return self.model_copy(
            update={
                "recommendations": other.recommendations,
                "pending": other.pending,
                "errors": other.errors,
                "forecast": other.forecast,
                "forecast_min": other.forecast_min,
                "forecast_at": other.forecast_at,
                "capacity": other.capacity,
                "hourly_peaks": other.hourly_peaks,
                "quarter_peaks": other.quarter_peaks,
                "hourly_means": other.hourly_means,
            }
        )


class Decision(BaseModel):
    region: str
    at: AwareDatetime
    min_instances: int
    max_instances: int
    previous_min: int | None
    previous_max: int | None
    changed: bool
    desired_min: int  # before stabilisation, tolerance and the guard
    bound_by: Binding
    max_bound_by: MaxBinding = "rule-max"
    from_live: bool = False  # previous_min/max were read from the service (else the stored state)
    rule: str | None
    local_time: str
    forecast: ForecastView
    forecast_at: AwareDatetime | None = None  # the decision that made the forecast (reused between)
    last_minute_rpm: float | None = None  # the last minute's requests, the load the min follows
    capacity: Capacity
    guard_firing: list[str] = []
