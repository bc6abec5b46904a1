"""The fan-out API's contract: the path variables, query strings, bodies and answers of the routes
``main.py`` declares (each model is a component of ``/openapi.json``, named after its class), and
the incident answers built from the stored records."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, model_validator

from functions.fanout import silences
from functions.fanout.incident_policy import Priority
from functions.fanout.incident_record import (
    Incident,
    IncidentAlert,
    PagerDutySync,
    Review,
    State,
    TimelineEntry,
    review_url,
)
from shared.clock import CalendarDate, QueryTime
from shared.ids import DocumentId
from shared.messages import Severity

if TYPE_CHECKING:
    from functions.fanout.incident_actions import Outcome

# --- the flush tick, a group's timer, the digest -------------------------------------------------


class DigestAnswer(BaseModel):
    day: date
    transitions: int
    channels: dict[str, str] = Field(description="per channel: delivered, logged or duplicate")


class FlushAnswer(BaseModel):
    group_id: str
    notifications: list[str] = Field(description="the notifications flushed or repeated")
    errors: int = Field(description="deliveries that failed (the flush tick re-drives them)")
    armed: list[AwareDatetime] = Field(description="the group's next timers")


class FlushGroupRequest(BaseModel):
    """What a group's timer task posts (``timers.flush_body``)."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field(pattern=r"^(critical|high|medium|low)-[0-9a-f]{24}$")
    due_at: AwareDatetime


class DigestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    day: CalendarDate | None = Field(default=None, alias="date")


# --- silences ------------------------------------------------------------------------------------


class SilenceStatus(BaseModel):
    state: silences.SilenceState


class SilenceOut(silences.Silence):
    """A silence as the API answers it (camelCase, as Alertmanager's)."""

    status: SilenceStatus


class SilencePath(BaseModel):
    silence_id: DocumentId(max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="a silence id (a UUID)")  # type: ignore[valid-type]


class SilencesQuery(BaseModel):
    state: silences.SilenceState | None = Field(default=None, description="only silences in this state")
    limit: int = Field(default=100, ge=1, le=500, description="silences read for this page, by start")
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=64,
            pattern=r"^[A-Za-z0-9-]+$",
            description='the last silence read (as the `Link: rel="next"` header gives it)',
        )
        | None
    ) = None


class SilenceList(RootModel[list[SilenceOut]]):
    pass


# --- incidents -----------------------------------------------------------------------------------

INCIDENT_ID_PATTERN = r"^(critical|high|medium|low)-[0-9a-f]{24}-(i[0-9]{1,9}|d[0-9a-f]{8})$"


class IncidentPath(BaseModel):
    incident_id: DocumentId(  # type: ignore[valid-type]
        max_length=48, pattern=INCIDENT_ID_PATTERN, description="an incident id (<group id>-i<n>)"
    )


class IncidentsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["triggered", "acknowledged", "resolved"] | None = Field(
        default=None, description="only incidents in this state"
    )
    priority: Literal["P1", "P2", "P3", "P4"] | None = Field(default=None, description="only this priority")
    since: QueryTime | None = Field(default=None, description="only incidents opened at or after this time")
    limit: int = Field(default=100, ge=1, le=500, description="at most this many, newest first")
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=48,
            pattern=INCIDENT_ID_PATTERN,
            description='the last incident of the page before (as the `Link: rel="next"` header gives it)',
        )
        | None
    ) = None


# A window of the transition log: a day by default, a week at most (the log keeps 30 days).
TRANSITIONS_WINDOW = timedelta(days=1)
TRANSITIONS_MAX_WINDOW = timedelta(days=7)


class TransitionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: QueryTime = Field(description="received at or after this time")
    until: QueryTime | None = Field(
        default=None, description="received before this time (default since + 24 h, at most since + 7 days)"
    )
    severity: Severity | None = Field(default=None, description="only this severity")
    limit: int = Field(default=100, ge=1, le=500, description="at most this many, oldest first")
    after: DocumentId(description="the `next` of the page before") | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _window(self) -> TransitionsQuery:
        end = self.end()
        if not self.since < end <= self.since + TRANSITIONS_MAX_WINDOW:
            raise ValueError("until must be after since and at most 7 days after it")
        return self

    def end(self) -> datetime:
        return self.until or self.since + TRANSITIONS_WINDOW


class IncidentOut(BaseModel):
    """An incident as the API answers it (the contract's fields and the rest of the record)."""

    id: str
    priority: Priority
    severity: Severity
    state: State
    title: str
    group_key: str
    labels: dict[str, str]
    rules: list[str]
    runbook: str | None
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    respond_by: datetime
    resolve_by: datetime
    escalation_level: int
    next_escalation_at: datetime | None
    timeline: list[TimelineEntry]
    review: Review | None
    alerts: list[IncidentAlert]
    pagerduty_sync: list[PagerDutySync] = Field(
        default=[], description="acknowledgements and resolves made here that PagerDuty has not taken yet"
    )
    review_url: str | None = Field(default=None, description="the review draft as markdown, once drafted")

    @classmethod
    def of(cls, incident: Incident, base_url: str) -> IncidentOut:
        data = incident.model_dump(
            exclude={"fingerprints", "unlisted_firing", "opened_on_demand", "updated_at"}
        )
        data["review_url"] = review_url(base_url, incident.id) if incident.review else None
        return cls.model_validate(data)


class IncidentList(RootModel[list[IncidentOut]]):
    pass


class IncidentActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        default=None, min_length=1, max_length=2000, description="recorded on the timeline"
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)


class IncidentActionOut(BaseModel):
    changed: bool = Field(
        description="false: nothing changed (already acknowledged or resolved: detail says by whom)"
    )
    detail: str
    incident: IncidentOut


class OpenIncidentIn(BaseModel):
    """Open an incident on demand for a group that is not paged automatically (medium, low)."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field(pattern=r"^(critical|high|medium|low)-[0-9a-f]{24}$", description="the alert group")
    note: str | None = Field(default=None, min_length=1, max_length=2000)


def public_url() -> str:
    from functions.fanout.settings import get_fanout_settings

    return get_fanout_settings().public_url


def incident_out(incident: Incident) -> IncidentOut:
    """An incident as the API answers it, its review link on the public URL."""
    return IncidentOut.of(incident, public_url())


def incident_action_out(outcome: Outcome) -> IncidentActionOut:
    """What an acknowledgement, resolution or note did, and the incident after it."""
    return IncidentActionOut(
        changed=outcome.change.changed, detail=outcome.change.detail, incident=incident_out(outcome.incident)
    )


# --- Slack's and PagerDuty's requests ------------------------------------------------------------


class WebhookAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    handled: list[dict[str, Any]] = Field(description="what each action or event did")
