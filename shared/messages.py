"""Messages that cross function boundaries over Pub/Sub, validated on both ends.

``metric-updates``: published by metric ingestion after a batch is stored, naming what it
touched, so alert evaluation runs for those series at once instead of at the next minute.
``alerts``: one message per alert state transition, published by alert evaluation and delivered
by fan-out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Severity = Literal["critical", "high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class _Message(BaseModel):
    """Producers build messages strictly (an unknown field is an error); consumers read them
    tolerantly (``shared.events.decode_pubsub`` ignores fields they do not know), so a producer
    may be deployed before its consumers. ``schema_version`` rises when a field changes meaning;
    adding a field keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = Field(default=1, ge=1)


class MetricsIngested(_Message):
    """Which metrics (and label sets) a stored batch touched, and the span of its points."""

    batch_id: str = Field(min_length=1)
    metrics: dict[str, list[dict[str, str]]] = Field(
        description="metric name -> the label sets of the series written"
    )
    start: AwareDatetime
    end: AwareDatetime


class AlertTransition(_Message):
    """One state change of one alert (a rule and a label set).

    ``fingerprint`` identifies the alert across its life (PagerDuty dedup_key, Slack thread);
    ``transition_id`` identifies this change (exactly-once delivery per transition and channel).
    """

    transition_id: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)
    rule: str
    kind: str = Field(description="threshold, absence, anomaly, trend, slo_burn_rate, ...")
    state: Literal["firing", "resolved"]
    previous_state: Literal["inactive", "pending", "firing", "resolved"]
    severity: Severity
    metric: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    runbook: list[str] = []
    value: float | None = None
    threshold: float | None = None
    op: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    evaluated_at: AwareDatetime
    dashboard_url: str | None = None
