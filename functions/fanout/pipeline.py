"""From alert transitions to notifications: grouping, flapping, silences and inhibition.

Every write is in a transaction, so a retry or a second instance never sees half of it (the
records are in ``records.py``). A transition is added to its group's pending list; the group is
flushed (one notification) when ``next_flush_at`` has come: at once for a new group with
``group_wait: 0`` (so a critical alert is sent from the Pub/Sub handler itself), otherwise by the
group's timer (``timers.py``: a Cloud Tasks task at the due time calling ``/v1/flush/group``).
The flush tick (Cloud Scheduler, every minute) is the safety net of the timers; it also releases
flapping holds, re-notifies alerts whose silence or inhibition ended and re-drives notifications an
instance left unfinished.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from functions.fanout import silences as silence_store
from functions.fanout.delivery import deliver
from functions.fanout.incident_policy import get_policy
from functions.fanout.incident_record import Incident, incident_id, review_url
from functions.fanout.incident_store import INCIDENTS, incident_document
from functions.fanout.incidents import alerts_changed, open_incident
from functions.fanout.models import NEVER_TOO_OLD, Notification, doc_id, mark_late
from functions.fanout.notification_size import split_plan
from functions.fanout.pagerduty_keys import notification_key
from functions.fanout.policy import Plan, admit, enqueue, plan
from functions.fanout.records import (
    ALERTS,
    GROUPS,
    KEEP,
    TRANSITIONS,
    AlertRecord,
    GroupRecord,
    alert_document,
    group_document,
    store_notification,
)
from functions.fanout.records import collection as _col
from functions.fanout.records import field_filter as _field_filter
from functions.fanout.routes import RoutingConfig, get_routing
from functions.fanout.settings import get_fanout_settings
from shared.clock import utcnow
from shared.dead_letters import first_published
from shared.events import decode_pubsub
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.messages import AlertTransition
from shared.notices import NOTICE_KIND

log = get_logger("fanout.pipeline")


# --- ingest ------------------------------------------------------------------------------------


def ingest(transition: AlertTransition, now: datetime, routing: RoutingConfig) -> GroupRecord:
    """Record a transition once and queue it in its group (or hold/absorb it while flapping)."""
    from google.cloud import firestore

    client = get_firestore()
    group_id = routing.group_id(transition)
    route = routing.route_of(transition)
    tref = client.collection(TRANSITIONS).document(doc_id(transition.transition_id))
    aref = client.collection(ALERTS).document(doc_id(transition.fingerprint))
    gref = client.collection(GROUPS).document(group_id)

    def run(tx: firestore.Transaction) -> GroupRecord:
        tsnap, asnap, gsnap = (ref.get(transaction=tx) for ref in (tref, aref, gref))
        group = (
            GroupRecord.model_validate(gsnap.to_dict())
            if gsnap.exists
            else GroupRecord(
                group_id=group_id,
                severity=transition.severity,
                labels=routing.group_labels(transition),
                label_route=route.label_route,
            )
        )
        if tsnap.exists:
            return group  # a redelivery: recorded before
        alert = AlertRecord.model_validate(asnap.to_dict()) if asnap.exists else None
        outcome, updated = admit(transition, alert, group_id, routing.flapping)
        if updated is not None:
            if outcome == "pending":
                enqueue(group, transition.transition_id, now, route.group_wait, route.group_interval)
            tx.set(aref, alert_document(updated, now))
        tx.set(
            tref,
            {
                "transition": transition.model_dump(mode="json"),
                "group_id": group_id,
                "severity": transition.severity,
                "outcome": outcome,
                "notification_id": None,
                "received_at": now,
                "expire_at": now + KEEP,
            },
        )
        tx.set(gref, group_document(group, now))
        log.info(
            "transition %s of %s: %s",
            transition.transition_id,
            transition.fingerprint,
            outcome,
            extra={"group_id": group_id, "state": transition.state, "alert_severity": transition.severity},
        )
        return group

    return run_transaction(run)


# --- flush -------------------------------------------------------------------------------------


def firing_alerts() -> list[AlertRecord]:
    query = _col(ALERTS).where(filter=_field_filter("state", "==", "firing"))
    return [AlertRecord.model_validate(s.to_dict()) for s in query.stream()]


def flush(group_id: str, now: datetime, routing: RoutingConfig) -> str | None:
    """Turn a due group's pending transitions into one notification; returns its id (or None)."""
    from google.cloud import firestore

    client = get_firestore()
    gref = client.collection(GROUPS).document(group_id)
    for _ in range(5):
        snapshot = gref.get()
        if not snapshot.exists:
            return None
        group = GroupRecord.model_validate(snapshot.to_dict())
        if not group.pending or group.next_flush_at is None or group.next_flush_at > now:
            return None
        decided = _plan(group, now, routing)

        def run(tx: firestore.Transaction, group: GroupRecord = group, decided: Plan = decided) -> str | None:
            current = GroupRecord.model_validate(gref.get(transaction=tx).to_dict())
            if current.pending != group.pending:
                raise _Changed
            incident = _load_incident(tx, current.incident_id)  # read before any write
            return _commit(tx, current, decided, now, routing, incident=incident)

        try:
            return run_transaction(run)
        except _Changed:
            continue
    raise RuntimeError(f"group {group_id} kept changing while being flushed")


class _Changed(Exception):
    pass


def _plan(group: GroupRecord, now: datetime, routing: RoutingConfig) -> Plan:
    client = get_firestore()
    snaps = client.get_all([client.collection(TRANSITIONS).document(doc_id(t)) for t in group.pending])
    loaded = [AlertTransition.model_validate(s.to_dict()["transition"]) for s in snaps if s.exists]
    alert_snaps = client.get_all([client.collection(ALERTS).document(doc_id(t.fingerprint)) for t in loaded])
    records = [AlertRecord.model_validate(s.to_dict()) for s in alert_snaps if s.exists]
    return plan(
        group,
        {t.transition_id: t for t in loaded},
        {a.fingerprint: a for a in records},
        firing_alerts(),
        silence_store.active(now),
        routing,
        now,
    )


def _load_incident(tx: Any, incident_id: str | None) -> Incident | None:
    if not incident_id:
        return None
    snapshot = _col(INCIDENTS).document(incident_id).get(transaction=tx)
    return Incident.model_validate(snapshot.to_dict()) if snapshot.exists else None


def track_incident(
    group: GroupRecord, notify: list[AlertTransition], incident: Incident | None, now: datetime
) -> Incident | None:
    """The group's incident after this notification: the open one with these alerts joined or
    resolved (resolved itself when none fires), or a new one when alerts fire in a group of a
    severity that opens incidents and none is open. Notices open none: they never stay firing."""
    policy = get_policy()
    lasting = [t for t in notify if t.kind != NOTICE_KIND]
    if not lasting:
        return incident if incident is not None and incident.state != "resolved" else None
    if incident is not None and incident.state != "resolved":
        alerts_changed(incident, lasting, now, policy)
        return incident
    firing = [t for t in lasting if t.state == "firing"]
    if not firing or not policy.opens_for(group.severity):
        return None
    return open_incident(
        incident_id(group.group_id, group.seq),
        group_id=group.group_id,
        severity=group.severity,
        group_labels=group.labels,
        firing=firing,
        now=now,
        policy=policy,
    )


def _commit(
    tx: Any,
    group: GroupRecord,
    plan: Plan,
    now: datetime,
    routing: RoutingConfig,
    *,
    incident: Incident | None = None,
) -> str | None:
    route = routing.route(group.severity, group.label_route)
    notification_id: str | None = None
    # What one notification document cannot carry stays pending, due at once (the next flush).
    plan, left_pending = split_plan(plan)
    if left_pending:
        log.warning(
            "group %s: %d transitions left for the next flush (a notification's size limit)",
            group.group_id,
            len(left_pending),
            extra={"group_id": group.group_id},
        )
    firing = set(group.firing)
    for t in plan.notify:
        # A notice is told once: it never stays firing, so it is never repeated or held.
        lasting = t.state == "firing" and t.kind != NOTICE_KIND
        firing.add(t.fingerprint) if lasting else firing.discard(t.fingerprint)
        tx.update(
            _col(ALERTS).document(doc_id(t.fingerprint)),
            {"notified_state": "firing" if lasting else "resolved", "muted": None},
        )
    if plan.notify:
        group.seq += 1
        notification_id = f"{group.group_id}-n{group.seq}"
        tracked = track_incident(group, plan.notify, incident, now)
        if tracked is not None:
            tx.set(_col(INCIDENTS).document(tracked.id), incident_document(tracked))
            group.incident_id = tracked.id
        notification = Notification(
            notification_id=notification_id,
            kind="notify",
            group_id=group.group_id,
            group_labels=group.labels,
            severity=group.severity,
            mention=route.mention,
            **route.receivers(),
            alerts=plan.notify,
            created_at=now,
            incident_id=tracked.id if tracked else None,
            review_url=review_url(get_fanout_settings().public_url, tracked.id)
            if tracked and tracked.review
            else None,
            # The group's PagerDuty incident, and whether any of its alerts still fires.
            pagerduty_key=notification_key(group.group_id, tracked or incident),
            group_firing=len(firing),
        )
        channels = routing.channels_for(group.severity, plan.notify, group.label_route)
        store_notification(tx, notification, channels, plan.items)
    for item in plan.items:
        tx.update(
            _col(TRANSITIONS).document(doc_id(item["transition_id"])),
            {
                "outcome": item["outcome"],
                "reason": item["reason"],
                "notification_id": notification_id if item["outcome"] == "notified" else None,
            },
        )
    for item in plan.items:
        if item["outcome"] == "muted":
            tx.update(_col(ALERTS).document(doc_id(item["fingerprint"])), {"muted": item["reason"]})
    group.pending = left_pending
    group.next_flush_at = now if left_pending else None
    if plan.notify:
        group.last_flush_at = now
        group.firing = sorted(firing)
        group.repeat_at = now + route.repeat_interval if group.firing else None
        if not group.firing:
            group.incident_id = None  # the next firing opens a new incident
    tx.set(_col(GROUPS).document(group.group_id), group_document(group, now))
    return notification_id


# --- the Pub/Sub path --------------------------------------------------------------------------


def take_transition_event(event: Any) -> None:
    """One alert transition from the ``alerts`` topic: raise to retry, return to drop (or when done)."""
    # No age limit here: a transition is never dropped for being old, only marked late. One no
    # version of fan-out can read (a new severity, a changed field) goes to alerts-dead-letter
    # with the reason, where the dead-letter store keeps it and pages.
    delivery = decode_pubsub(event, AlertTransition, max_age=NEVER_TOO_OLD, dead_letter=True)
    if delivery is None:
        return
    # A re-driven transition is as late as its first publish, not its re-drive.
    handle_delivered(delivery.body, first_published(delivery.attributes, delivery.publish_time))


def handle_delivered(transition: AlertTransition, published_at: datetime) -> list[str]:
    """A transition Pub/Sub delivered, first published at ``published_at``: never dropped for
    being old, only marked late (``handle_transition`` then)."""
    from shared.settings import get_settings

    age = utcnow() - published_at
    if age > timedelta(seconds=get_settings().max_event_age_seconds):
        # Under the entry point's logger name, where late deliveries have always been logged.
        get_logger("fanout").warning(
            "delivering a late transition",
            extra={"transition_id": transition.transition_id, "age_seconds": age.total_seconds()},
        )
        transition = mark_late(transition, age)
    return handle_transition(transition)


def handle_transition(transition: AlertTransition) -> list[str]:
    """Ingest, flush the group if due, deliver what announces this transition. Idempotent."""
    from functions.fanout.timers import arm_group, arm_stored_group

    routing = get_routing()
    now = utcnow()
    group = ingest(transition, now, routing)
    flushed = group.next_flush_at is not None and group.next_flush_at <= now
    if flushed:
        flush(group.group_id, now, routing)
    stored = _col(TRANSITIONS).document(doc_id(transition.transition_id)).get().to_dict() or {}
    notification_id = stored.get("notification_id")
    if notification_id:
        deliver(notification_id)
    # After the delivery, so arming never delays a page: the group's next flush and its repeat.
    # A redelivery arms again, which the timer's name makes a no-op (or repairs a failed arm).
    if flushed:
        arm_stored_group(group.group_id, now)
    else:
        arm_group(group, now)
    return [notification_id] if notification_id else []
