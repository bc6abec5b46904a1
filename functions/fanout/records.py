"""Every fan-out collection in Firestore, how long its documents are kept, and the records in them.

- ``fanout_transitions/{transition_id}``: each transition received once, with its group, its
  outcome and the notification that announced it (also the source of the daily digest).
- ``fanout_alerts/{fingerprint}``: each alert's current state, recent state changes (flapping),
  whether a resolve is held, and what receivers were last told (``notified_state``); kept while
  the alert fires or a resolve is held, ``KEEP`` after that.
- ``fanout_groups/{group_id}``: the transitions waiting to be notified (``pending``), when the
  group is next flushed (``next_flush_at``) and re-notified (``repeat_at``), and its firing alerts.
- ``fanout_notifications/{notification_id}``: each notification and its per-channel deliveries.
- ``fanout_silences/{id}``: silences, kept a week after they end.
- ``incidents/{incident_id}``: each incident (``incidents.py``; a resolved one is kept
  ``ION_INCIDENTS_KEEP_DAYS``, an open one for good).
- ``fanout_slack_threads/{fingerprint}``, ``fanout_slack_messages/{id}``: where each alert was
  posted in Slack, so later changes thread under it and updates edit it.

Every document carries ``expire_at`` (the TTL policies in topology.yaml delete it then).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from functions.fanout.models import Notification
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.messages import AlertTransition, Severity

TRANSITIONS = "fanout_transitions"
ALERTS = "fanout_alerts"
GROUPS = "fanout_groups"
NOTIFICATIONS = "fanout_notifications"
SILENCES = "fanout_silences"
SLACK_THREADS = "fanout_slack_threads"
SLACK_MESSAGES = "fanout_slack_messages"

# Transitions, alerts, groups, notifications and Slack threads are kept this long after a write.
KEEP = timedelta(days=30)
# A silence is kept this long after it ends.
KEEP_EXPIRED_SILENCE = timedelta(days=7)

Outcome = Literal["pending", "stale", "held", "absorbed", "notified", "muted", "superseded", "unannounced"]


class AlertRecord(BaseModel):
    fingerprint: str
    group_id: str
    severity: Severity
    state: Literal["firing", "resolved"]
    labels: dict[str, str]
    latest: AlertTransition
    changes: list[datetime] = []
    held: bool = False
    notified_state: Literal["firing", "resolved"] | None = None
    muted: str | None = None


class GroupRecord(BaseModel):
    group_id: str
    severity: Severity
    labels: dict[str, str]
    pending: list[str] = []
    next_flush_at: datetime | None = None
    last_flush_at: datetime | None = None
    repeat_at: datetime | None = None
    firing: list[str] = []
    seq: int = 0
    # The group's incident while its alerts fire (cleared when none fires any more).
    incident_id: str | None = None
    # The label route its alerts took (routing.yaml ``routes``; part of the group id); None: the
    # severity's route, as every group stored before label routes.
    label_route: str | None = None


def collection(name: str) -> Any:
    return get_firestore().collection(name)


def field_filter(field: str, op: str, value: Any) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(field, op, value)


def group_document(group: GroupRecord, now: datetime) -> dict[str, Any]:
    """A group record as stored, kept ``KEEP`` from ``now``."""
    return {**group.model_dump(mode="python"), "expire_at": now + KEEP}


def alert_expiry(alert: AlertRecord, now: datetime) -> datetime | None:
    """None (never deleted) while the alert fires or holds a resolve: an alert can fire for longer
    than ``KEEP`` with no transition, and its resolve must still find that receivers were told it
    fires (else it goes out to nobody), as the end of its silence must find it muted. ``KEEP`` from
    ``now`` once it is over."""
    return None if alert.state == "firing" or alert.held else now + KEEP


def alert_document(alert: AlertRecord, now: datetime) -> dict[str, Any]:
    """An alert record as stored, with its expiry (``alert_expiry``)."""
    return {**alert.model_dump(mode="python"), "updated_at": now, "expire_at": alert_expiry(alert, now)}


def store_notification(
    transaction: Any, notification: Notification, channels: list[str], items: list[dict[str, Any]]
) -> None:
    now = utcnow()
    transaction.set(
        collection(NOTIFICATIONS).document(notification.notification_id),
        {
            "notification": notification.model_dump(mode="json"),
            "channels": channels,
            "items": items,
            "deliveries": {},
            "complete": False,
            "created_at": now,
            "expire_at": now + KEEP,
        },
    )
