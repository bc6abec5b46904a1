"""The views of the incident records' panels (part of the dashboard JSON, ``schema_version`` 1:
fields only added): per-priority response and resolution times, and incidents listed one by one.
Durations are in seconds."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel

from functions.reports.panels import Status


class PriorityStatsView(BaseModel):
    """One priority's incidents of a window: how fast they were acknowledged (MTTA) and resolved
    (MTTR), median and mean over the incidents that were, and how many met their targets."""

    priority: str
    severity: str
    respond_target_seconds: float
    resolve_target_seconds: float
    opened: int
    acknowledged: int
    resolved: int
    mtta_median_seconds: float | None
    mtta_mean_seconds: float | None
    mttr_median_seconds: float | None
    mttr_mean_seconds: float | None
    within_target: int
    missed_target: int
    pending: int
    text: str
    status: Status


class IncidentRecordView(BaseModel):
    """One incident as a list shows it; ``age_seconds`` for an open one (at the build), the
    times to acknowledge and to resolve once they happened, and which targets it missed."""

    id: str
    priority: str
    severity: str
    state: str
    title: str
    labels: dict[str, str]
    opened_at: AwareDatetime
    acknowledged_at: AwareDatetime | None
    resolved_at: AwareDatetime | None
    acknowledged_by: str | None
    resolved_by: str | None
    respond_by: AwareDatetime
    resolve_by: AwareDatetime
    age_seconds: float | None
    acknowledge_seconds: float | None
    resolve_seconds: float | None
    missed_response: bool
    missed_resolution: bool
    runbook: str | None = None
