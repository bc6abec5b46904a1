"""The incident record, as stored: the document reports reads (fields and timeline kinds listed in
the README), its timeline entries and alerts, the ``Change`` every lifecycle step returns, and the
ids and addresses an incident is known by. What each event does to a record is ``incidents.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.fanout.incident_policy import Priority
from shared.messages import Severity

State = Literal["triggered", "acknowledged", "resolved"]
OPEN_STATES: tuple[State, ...] = ("triggered", "acknowledged")
TimelineKind = Literal[
    "opened",
    "alert_joined",
    "alert_resolved",
    "notified",
    "acknowledged",
    "unacknowledged",
    "escalated",
    "note",
    "resolved",
    "review_drafted",
]
# What an older instance reads of an incident a newer one wrote, during a deploy
# (``shared/compat.py``): fields it does not know are kept (``extra="allow"``) and written back
# with its own changes, and a timeline kind it does not know is kept as written, never a failure
# to read the incident (acknowledging it, escalating it, listing incidents).
_KEEPS_NEWER_FIELDS = ConfigDict(extra="allow")
# Fields of the stored document that are not the incident's (``incident_document`` sets them).
STORED_ONLY = frozenset({"expire_at"})

# A timeline holds at most this many entries; the oldest notifications, then alert comings and
# goings, make room (never the lifecycle entries): a group flapping for a week must not outgrow a
# Firestore document (1 MiB).
MAX_TIMELINE = 500
# An incident lists at most this many of its alerts whole (summary, values, runbook): a storm's
# group of a thousand alerts is joined flush by flush in the transaction that stores each flush,
# and must not outgrow the document. The others are in ``fingerprints`` and, while they fire, in
# ``unlisted_firing``.
MAX_LISTED_ALERTS = 100
# An alert's summary as the incident keeps it (listed, and on the timeline), in characters.
MAX_SUMMARY = 300


def clipped(summary: str) -> str:
    return summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…"


class TimelineEntry(BaseModel):
    model_config = _KEEPS_NEWER_FIELDS

    at: datetime
    kind: TimelineKind | str = Field(description="one of the kinds listed, or one a newer version added")
    by: str | None = None
    text: str | None = None
    # What the entry records, for idempotency: the same ref twice is recorded once.
    ref: str | None = None


class IncidentAlert(BaseModel):
    """One alert of the incident as last seen: what the review's impact is drawn from."""

    model_config = _KEEPS_NEWER_FIELDS

    fingerprint: str
    rule: str
    state: Literal["firing", "resolved"]
    metric: str
    summary: str
    value: float | None = None
    peak: float | None = None
    threshold: float | None = None
    op: str | None = None
    started_at: datetime
    resolved_at: datetime | None = None
    runbook: list[str] = []


class PagerDutySync(BaseModel):
    """An acknowledgement or resolve made here that PagerDuty has not taken yet: tried at once
    within a short bound, then by the flush tick until PagerDuty takes it or the time to try runs
    out (``pagerduty_sync.py``). ``key`` names it for exactly once (the n-th acknowledgement of an
    incident that PagerDuty unacknowledged in between is another)."""

    model_config = _KEEPS_NEWER_FIELDS

    action: Literal["acknowledge", "resolve"]
    key: str
    requested_at: datetime
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    # While an attempt is sending it: another sender leaves it until then.
    claimed_until: datetime | None = None
    # The alerts (fingerprints) PagerDuty took it for already: a try cut short (its time, a 429
    # at PagerDuty's 120 events a minute) goes on from the others.
    taken: list[str] = []


class Review(BaseModel):
    model_config = _KEEPS_NEWER_FIELDS

    markdown: str
    generated_at: datetime


class Incident(BaseModel):
    model_config = _KEEPS_NEWER_FIELDS

    id: str
    priority: Priority
    severity: Severity
    state: State = "triggered"
    title: str
    group_key: str
    labels: dict[str, str] = {}
    rules: list[str] = []
    runbook: str | None = None
    opened_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    respond_by: datetime
    resolve_by: datetime
    escalation_level: int = 0
    # When the next escalation step is due (None: acknowledged, resolved, or no step left).
    next_escalation_at: datetime | None = None
    # The step due at next_escalation_at notifies the current level again instead of the next:
    # PagerDuty took the acknowledgement back (``incident.unacknowledged``).
    renotify_current_level: bool = False
    # What PagerDuty is still to be told, oldest first, and when the flush tick next tries.
    pagerduty_sync: list[PagerDutySync] = []
    pagerduty_sync_at: datetime | None = None
    timeline: list[TimelineEntry] = []
    review: Review | None = None
    alerts: list[IncidentAlert] = []
    # The alerts' fingerprints (and the previous version's PagerDuty dedup_keys: ``pagerduty_keys``).
    fingerprints: list[str] = []
    # The dedup_key of the incident's one PagerDuty incident (``pagerduty_keys.py``). None: opened
    # by the previous version, which triggered one PagerDuty incident per alert, by fingerprint.
    pagerduty_key: str | None = None
    # The alerts past MAX_LISTED_ALERTS that fire: the incident resolves by itself when none does.
    unlisted_firing: list[str] = []
    opened_on_demand: bool = False
    updated_at: datetime | None = None

    @property
    def firing(self) -> list[IncidentAlert]:
        return [a for a in self.alerts if a.state == "firing"]

    @property
    def unlisted(self) -> int:
        """How many of its alerts the incident does not list (past ``MAX_LISTED_ALERTS``)."""
        listed = {a.fingerprint for a in self.alerts}
        return sum(1 for fingerprint in self.fingerprints if fingerprint not in listed)

    @property
    def pagerduty_keys(self) -> list[str]:
        """The dedup_keys PagerDuty holds this incident's alerts by: its own key, or for an incident
        the previous version opened, one per alert (its fingerprints)."""
        return [self.pagerduty_key] if self.pagerduty_key else list(self.fingerprints)

    def to_document(self) -> dict[str, object]:
        """Its fields, and those a newer version added; never what the store set beside them."""
        return self.model_dump(mode="python", exclude=set(STORED_ONLY))


@dataclass(frozen=True)
class Change:
    """What an event did: ``changed`` false means the incident is as it was, and ``detail`` says
    why (already acknowledged by whom and when, already resolved...)."""

    changed: bool
    detail: str


def incident_id(group_id: str, seq: int) -> str:
    """The id of the incident a group's ``seq``-th notification opened: the same flush redelivered
    opens the same id, so no second incident."""
    return f"{group_id}-i{seq}"


def on_demand_id(group_id: str, at: datetime) -> str:
    digest = hashlib.sha256(f"{group_id}\x00{at.isoformat()}".encode()).hexdigest()[:8]
    return f"{group_id}-d{digest}"


def review_url(base_url: str, id_: str) -> str:
    return f"{base_url.rstrip('/')}/v1/incidents/{id_}/review"
