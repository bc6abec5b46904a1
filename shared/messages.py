"""Messages that cross function boundaries over Pub/Sub, validated on both ends.

``metric-updates``: published by metric ingestion after a batch is stored, naming what it
touched, so alert evaluation runs for those series at once instead of at the next minute.
``alerts``: one message per alert state transition, published by alert evaluation and delivered
by fan-out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field

from shared.compat import Versioned

Severity = Literal["critical", "high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class _Message(Versioned):
    """Producers build messages strictly (an unknown keyword is an error); consumers, and every
    reader of a message stored in Firestore, read them tolerantly (fields they do not know are
    ignored), so a producer may be deployed before its consumers and old and new instances may
    share stored transitions. ``schema_version`` rises when a field changes meaning (a consumer
    of an older version dead-letters such a message with the reason); adding a field keeps it.
    See ``shared/compat.py``."""

    model_config = ConfigDict(frozen=True)


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
