"""PagerDuty's webhooks (v3), already verified (``webhook_auth.verify_pagerduty``): what on-call
did in PagerDuty comes back to the incident. ``incident.acknowledged`` acknowledges and
``incident.resolved`` resolves the open incident whose ``dedup_key`` PagerDuty names as its
``incident_key`` (the incident's own, or for one the previous version opened, an alert's
fingerprint: ``incident_store.holds_key``), by the PagerDuty user (its ``agent.summary``);
``incident.unacknowledged`` (the acknowledgement timed out, or someone undid it) makes it
triggered again, its current escalation level notified again and escalation resumed;
``incident.annotated`` becomes a note. None is sent back to PagerDuty. Other event types
(``incident.triggered``, ``incident.escalated``, ...) are recorded as notes when they match an
incident, ignored otherwise. An event that occurred before an incident opened is about an
earlier incident (of the same alert or group: a late or retried webhook) and leaves it alone; one delivered
late is recorded at its ``occurred_at``. Each webhook
event (its ``event.id``) is handled once; an event older than an hour is refused as stale by the
caller."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from functions.fanout.incident_actions import (
    NoSuchIncident,
    acknowledge_incident,
    note_incident,
    resolve_incident,
    unacknowledge_incident,
)
from functions.fanout.incident_store import get_store
from shared.logging import get_logger

log = get_logger("fanout.pagerduty_webhooks")
MAX_AGE = timedelta(hours=1)


class BadWebhook(ValueError):
    pass


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Agent(_Loose):
    id: str | None = None
    summary: str | None = None


class IncidentData(_Loose):
    id: str | None = None
    type: str | None = None
    incident_key: str | None = None
    status: str | None = None
    html_url: str | None = None


class WebhookEvent(_Loose):
    id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    occurred_at: AwareDatetime
    agent: Agent | None = None
    data: IncidentData = IncidentData()


class Webhook(_Loose):
    event: WebhookEvent


def parse_webhook(body: bytes) -> WebhookEvent:
    try:
        return Webhook.model_validate_json(body).event
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()) or "body"
        raise BadWebhook(
            f'not a PagerDuty v3 webhook ({{"event": {{id, event_type, occurred_at, data}}}}): {fields}'
        ) from None


def stale(event: WebhookEvent, now: datetime) -> bool:
    return now - event.occurred_at > MAX_AGE


def handle_webhook(event: WebhookEvent) -> dict[str, Any]:
    key = event.data.incident_key
    who = (event.agent.summary or event.agent.id) if event.agent else None
    by = f"{who or 'someone'} (PagerDuty)"
    if not key:
        return {
            "event_id": event.id,
            "handled": [],
            "detail": "names no incident_key: not an incident of ours",
        }
    # A dedup_key may outlive its incident (a group's key, or an alert's under the previous
    # version, opens a new one after a resolve): an event that occurred before an incident opened
    # is about an earlier incident (a late or retried webhook).
    incidents = [i for i in get_store().open_with_pagerduty_key(key) if i.opened_at <= event.occurred_at]
    handled = []
    for incident in incidents:
        try:
            if event.event_type == "incident.acknowledged":
                outcome = acknowledge_incident(incident.id, by, "pagerduty", at=event.occurred_at)
            elif event.event_type == "incident.resolved":
                outcome = resolve_incident(incident.id, by, "pagerduty", at=event.occurred_at)
            elif event.event_type == "incident.unacknowledged":
                ref = f"pagerduty:{event.id}"
                outcome = unacknowledge_incident(incident.id, by, at=event.occurred_at, ref=ref)
            else:
                label = event.event_type.removeprefix("incident.")
                url = f" {event.data.html_url}" if event.data.html_url else ""
                # The event's id makes the note once: two copies of a retried delivery may race
                # past the receipt, which is written after.
                text = f"PagerDuty: {label}{url}"
                outcome = note_incident(incident.id, by, text, ref=f"pagerduty:{event.id}")
        except NoSuchIncident:
            continue
        handled.append({"incident_id": incident.id, "detail": outcome.change.detail})
    log.info(
        "PagerDuty %s for %s: %d incident(s)",
        event.event_type,
        key,
        len(handled),
        extra={"event_id": event.id, "event_type": event.event_type},
    )
    return {
        "event_id": event.id,
        "handled": handled,
        "detail": "ok" if handled else "no open incident holds it",
    }
