"""Escalation of incidents nobody acknowledged, on the incident policy's steps.

An incident's next step is due at ``next_escalation_at`` (respond_by + the step's ``after``). Its
group's timer is armed at that time (``timers.arm_stored_group``: one Cloud Tasks task calling
``/v1/flush/group``), and the flush tick escalates anything past due as the backstop. A step is
one transaction: the incident moves to the next level (timeline ``escalated``) and the step's
notification (kind ``escalation``: the step's channels, mention and wider channel, with the
incident's firing alerts) is stored under a deterministic id ``<incident>-e<level>``; it is then
delivered exactly once per channel like any notification. An acknowledged or resolved incident
never escalates; an acknowledged one's group repeats no more, and a resolved one whose alerts
still fire gives way to a new incident at the group's next repeat (``ticks.repeat``). An incident
whose acknowledgement PagerDuty took back is due at once: its current level is notified again
(kind ``unacknowledged``, ``<incident>-u<n>``) and the next step follows that level's timeout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from functions.fanout.delivery import deliver
from functions.fanout.incident_policy import get_policy
from functions.fanout.incident_record import Incident
from functions.fanout.incident_store import INCIDENTS, get_store, incident_document
from functions.fanout.incidents import escalate
from functions.fanout.models import Notification, doc_id
from functions.fanout.notification_size import fit_alerts
from functions.fanout.records import ALERTS, AlertRecord, store_notification
from functions.fanout.records import collection as _col
from functions.fanout.route_models import ResolvedRoute
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger

log = get_logger("fanout.escalation")


def escalation_id(incident_id: str, level: int) -> str:
    return f"{incident_id}-e{level}"


def escalate_incident(incident_id: str, now: datetime) -> str | None:
    """Take the incident's next step if due; returns the notification delivered (None: not due,
    acknowledged, resolved, no step left). Safe to call twice at once: one escalates."""
    from google.cloud import firestore

    policy = get_policy()
    ref = _col(INCIDENTS).document(incident_id)
    before = get_store().get(incident_id)
    if before is None or before.state != "triggered" or before.next_escalation_at is None:
        return None
    if before.next_escalation_at > now:
        return None
    client = get_firestore()
    snaps = client.get_all([client.collection(ALERTS).document(doc_id(fp)) for fp in before.fingerprints])
    alerts = [AlertRecord.model_validate(s.to_dict()) for s in snaps if s.exists]
    firing = [a.latest for a in alerts if a.state == "firing" or a.held]
    route = group_route(before)

    def run(tx: firestore.Transaction) -> str | None:
        snapshot = ref.get(transaction=tx)
        if not snapshot.exists:
            return None
        incident = Incident.model_validate(snapshot.to_dict())
        step_index, scheduled = incident.escalation_level, incident.next_escalation_at
        renotify = incident.renotify_current_level
        change = escalate(incident, now, policy)
        if not change.changed:
            if scheduled is not None and incident.next_escalation_at is None:
                tx.set(ref, incident_document(incident))  # the policy lost that step: stop looking
            return None
        tx.set(ref, incident_document(incident))
        if renotify:
            return _store_renotification(tx, incident, firing, now, route)
        step = policy.steps(incident.priority)[step_index]
        carried, left_out = fit_alerts(firing)
        notification = Notification(
            notification_id=escalation_id(incident.id, incident.escalation_level),
            kind="escalation",
            group_id=incident.group_key,
            group_labels=incident.labels,
            severity=incident.severity,
            mention=step.mention,
            alerts=carried,
            created_at=now,
            incident_id=incident.id,
            escalation_level=incident.escalation_level,
            slack_channel=step.slack_channel,
            alerts_left_out=left_out,
            pagerduty_key=incident.pagerduty_key,
            group_firing=len(firing),
            **route.receivers(),
        )
        store_notification(tx, notification, list(step.channels), [])
        return notification.notification_id

    notification_id = run_transaction(run)
    if notification_id is None:
        return None
    log.warning(
        "incident %s not acknowledged: escalated (%s)",
        incident_id,
        notification_id,
        extra={"incident_id": incident_id, "notification_id": notification_id},
    )
    try:
        deliver(notification_id)
    except Exception:  # the tick re-drives an unfinished notification
        log.exception("delivery of escalation %s failed; the flush tick re-drives it", notification_id)
    _arm_next(incident_id, now)
    return notification_id


def group_route(incident: Incident) -> ResolvedRoute:
    """The route of the incident's group: its label route's (receivers, level-0 channels) or its
    severity's. Read outside the step's transaction, which writes before it stores the notification."""
    from functions.fanout.records import GROUPS
    from functions.fanout.routes import get_routing

    stored = _col(GROUPS).document(incident.group_key).get().to_dict() or {}
    return get_routing().route(incident.severity, stored.get("label_route"))


def _store_renotification(
    tx: Any, incident: Incident, firing: list[Any], now: datetime, route: ResolvedRoute
) -> str | None:
    """The current level told again that nobody is on the incident: level 0 is the route's
    channels and mention, level n the n-th step's. PagerDuty is left out: it took the
    acknowledgement back itself and notifies its own responders again. The id
    ``<incident>-u<n>`` (the n-th time) makes it once."""
    level = incident.escalation_level
    # The level's step (a policy changed since may have fewer: its last step stands in).
    steps = get_policy().steps(incident.priority)[:level]
    if not steps:
        channels, mention, slack_channel = list(route.channels), route.mention, None
    else:
        step = steps[-1]
        channels, mention, slack_channel = list(step.channels), step.mention, step.slack_channel
    channels = [c for c in channels if c != "pagerduty"]
    if not channels or not firing:
        return None
    times = sum(1 for e in incident.timeline if e.kind == "unacknowledged")
    carried, left_out = fit_alerts(firing)
    notification = Notification(
        notification_id=f"{incident.id}-u{times}",
        kind="unacknowledged",
        group_id=incident.group_key,
        group_labels=incident.labels,
        severity=incident.severity,
        mention=mention,
        alerts=carried,
        created_at=now,
        incident_id=incident.id,
        escalation_level=level,
        slack_channel=slack_channel,
        alerts_left_out=left_out,
        pagerduty_key=incident.pagerduty_key,
        group_firing=len(firing),
        **route.receivers(),
    )
    store_notification(tx, notification, channels, [])
    return notification.notification_id


def _arm_next(incident_id: str, now: datetime) -> None:
    from functions.fanout.timers import arm_stored_group

    incident = get_store().get(incident_id)
    if incident is not None and incident.next_escalation_at is not None:
        arm_stored_group(incident.group_key, now)


def escalate_due(now: datetime) -> list[str]:
    """The tick's backstop: every incident past its next escalation (a timer lost or early)."""
    done: list[str] = []
    for incident in get_store().due_escalations(now):
        try:
            notification_id = escalate_incident(incident.id, now)
        except Exception:  # one incident's trouble must not stop the tick
            log.exception("escalating %s failed; the next tick tries again", incident.id)
            continue
        if notification_id:
            done.append(notification_id)
    return done


def escalate_group(group_incident: str | None, now: datetime) -> list[str]:
    """A group's timer fired: escalate its incident if that is what was due."""
    if not group_incident:
        return []
    notification_id = escalate_incident(group_incident, now)
    return [notification_id] if notification_id else []
