"""The fan-out's time-driven jobs. ``flush_group``: one group's precise timer (a Cloud Tasks task
at its due time). ``tick``: the flush tick (Cloud Scheduler, every minute), the timers' safety net
(any group past due, any repeat past due), flapping holds released, alerts whose silence or
inhibition ended, notifications an instance left unfinished, escalations due, and PagerDuty told
of acknowledgements and resolves it did not take at once. Both are safe to run twice at once
and to retry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from functions.fanout import silences as silence_store
from functions.fanout.delivery import deliver
from functions.fanout.incident_store import get_store
from functions.fanout.models import Notification, doc_id
from functions.fanout.notification_size import fit_alerts
from functions.fanout.pagerduty_keys import notification_key
from functions.fanout.pipeline import firing_alerts, flush
from functions.fanout.policy import enqueue, mute_reason
from functions.fanout.records import (
    ALERTS,
    GROUPS,
    NOTIFICATIONS,
    TRANSITIONS,
    AlertRecord,
    GroupRecord,
    alert_expiry,
    group_document,
    store_notification,
)
from functions.fanout.records import collection as _col
from functions.fanout.records import field_filter as _field_filter
from functions.fanout.routes import RoutingConfig, get_routing
from functions.fanout.settings import get_fanout_settings
from functions.fanout.timers import arm_stored_group
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger

log = get_logger("fanout.ticks")


def tick() -> dict[str, Any]:
    """Everything time-driven; safe to run twice at once and to retry."""
    routing = get_routing()
    now = utcnow()
    report: dict[str, Any] = {
        "released": release_holds(now, routing),
        "unmuted": requeue_unmuted(now, routing),
    }
    flushed, flush_errors = _serve_due("next_flush_at", flush, "flushing", now, routing)
    repeats, repeat_errors = _serve_due("repeat_at", repeat, "repeating", now, routing)
    errors = flush_errors + repeat_errors
    stale = now - timedelta(seconds=get_fanout_settings().redrive_after_seconds)
    unfinished = _col(NOTIFICATIONS).where(filter=_field_filter("complete", "==", False)).stream()
    redrive = [s.id for s in unfinished if s.to_dict()["created_at"] <= stale]
    from functions.fanout.escalation import escalate_due
    from functions.fanout.pagerduty_sync import sync_due

    # Escalations deliver themselves (and arm their next step).
    escalated = escalate_due(now)
    # What PagerDuty was not told when it was done (slow or down then): tried again.
    pagerduty_synced = sync_due(now)
    late = set(redrive)
    for nid in [*flushed, *repeats, *redrive]:
        try:
            deliver(nid, late=nid in late)
        except Exception:  # one notification's trouble must not stop the tick
            errors += 1
            log.exception("delivery of %s failed; the next tick re-drives it", nid)
    # Whatever the tick flushed has new due times (group_interval, repeat): arm their timers.
    for group_id in sorted({_group_of(nid) for nid in [*flushed, *repeats]}):
        arm_stored_group(group_id, now)
    report.update(
        flushed=flushed,
        repeats=repeats,
        redriven=redrive,
        escalated=escalated,
        pagerduty_synced=pagerduty_synced,
        errors=errors,
    )
    return report


def _serve_due(
    field: str,
    step: Callable[[str, datetime, RoutingConfig], str | None],
    what: str,
    now: datetime,
    routing: RoutingConfig,
) -> tuple[list[str], int]:
    """``step`` for every group whose ``field`` is due: the notifications made, and how many
    groups failed. One group that fails (its notification past Firestore's 1 MiB, a transaction
    that keeps failing) is logged and counted: raising would end every tick there, and no other
    group, repeat, escalation or PagerDuty sync would be served by the tick any more."""
    made: list[str] = []
    errors = 0
    for snapshot in _col(GROUPS).where(filter=_field_filter(field, "<=", now)).stream():
        try:
            nid = step(snapshot.id, now, routing)
        except Exception:
            errors += 1
            log.exception("%s group %s failed; the next tick tries again", what, snapshot.id)
            continue
        if nid:
            made.append(nid)
    return made, errors


def _group_of(notification_id: str) -> str:
    return notification_id.rsplit("-", 1)[0]  # <group>-n<seq> or <group>-r<seq>


class NotDueYet(Exception):
    """A group timer fired before its due time (beyond the clock tolerance): try again later."""

    def __init__(self, due_at: datetime, now: datetime) -> None:
        super().__init__(f"the timer is due at {due_at.isoformat()}, it is {now.isoformat()}")
        self.seconds = (due_at - now).total_seconds()


# Clocks of Cloud Tasks and of this instance may differ by this much: an earlier call is refused.
CLOCK_TOLERANCE = timedelta(seconds=1)


def flush_group(group_id: str, due_at: datetime) -> dict[str, Any]:
    """One group's timer (a Cloud Tasks task at ``due_at``): flush its pending transitions and
    send its repeat if due, deliver them, arm its next timers. Safe to call twice (the second
    finds nothing due) and early (``NotDueYet``, nothing done)."""
    routing = get_routing()
    now = utcnow()
    if due_at - now > CLOCK_TOLERANCE:
        raise NotDueYet(due_at, now)
    now = max(now, due_at)
    notifications = [nid for nid in (flush(group_id, now, routing), repeat(group_id, now, routing)) if nid]
    errors = 0
    from functions.fanout.escalation import escalate_group

    group = _col(GROUPS).document(group_id).get().to_dict() or {}
    escalated = escalate_group(group.get("incident_id"), now)
    for nid in notifications:
        try:
            deliver(nid)
        except Exception:  # as in the tick: the re-drive finishes it
            errors += 1
            log.exception("delivery of %s failed; the flush tick re-drives it", nid)
    armed = arm_stored_group(group_id, now)
    log.info(
        "group timer of %s: %d notification(s)",
        group_id,
        len(notifications),
        extra={"group_id": group_id, "notifications": notifications},
    )
    return {
        "group_id": group_id,
        "notifications": notifications + escalated,
        "errors": errors,
        "armed": [a.isoformat() for a in armed],
    }


def release_holds(now: datetime, routing: RoutingConfig) -> list[str]:
    """Alerts held open by flapping that have been quiet for `hold`: their resolve goes out now."""
    from google.cloud import firestore

    client = get_firestore()
    released = []
    for snapshot in _col(ALERTS).where(filter=_field_filter("held", "==", True)).stream():
        alert = AlertRecord.model_validate(snapshot.to_dict())
        if not alert.changes or max(alert.changes) + routing.flapping.hold > now:
            continue
        gref = client.collection(GROUPS).document(alert.group_id)

        def run(tx: firestore.Transaction, alert: AlertRecord = alert, gref: Any = gref) -> bool:
            aref = _col(ALERTS).document(doc_id(alert.fingerprint))
            current = AlertRecord.model_validate(aref.get(transaction=tx).to_dict())
            gsnap = gref.get(transaction=tx)
            if not current.held or not gsnap.exists:
                return False
            group = GroupRecord.model_validate(gsnap.to_dict())
            enqueue(group, current.latest.transition_id, now, timedelta(0), timedelta(0))
            tx.update(
                aref,
                {"held": False, "expire_at": alert_expiry(current.model_copy(update={"held": False}), now)},
            )
            tx.update(
                _col(TRANSITIONS).document(doc_id(current.latest.transition_id)), {"outcome": "pending"}
            )
            tx.set(gref, group_document(group, now))
            return True

        if run_transaction(run):
            released.append(alert.fingerprint)
    return released


def requeue_unmuted(now: datetime, routing: RoutingConfig) -> list[str]:
    """Firing alerts muted when they fired whose silence or inhibition has ended: notify them now."""
    from google.cloud import firestore

    client = get_firestore()
    firing = firing_alerts()
    candidates = [a for a in firing if a.muted and a.notified_state != "firing" and not a.held]
    if not candidates:
        return []
    active = silence_store.active(now)
    requeued = []
    for alert in candidates:
        if mute_reason(alert.latest, alert.labels, firing, active, routing, now):
            continue
        gref = client.collection(GROUPS).document(alert.group_id)

        def run(tx: firestore.Transaction, alert: AlertRecord = alert, gref: Any = gref) -> bool:
            aref = _col(ALERTS).document(doc_id(alert.fingerprint))
            current = AlertRecord.model_validate(aref.get(transaction=tx).to_dict())
            gsnap = gref.get(transaction=tx)
            if not current.muted or current.state != "firing" or not gsnap.exists:
                return False
            group = GroupRecord.model_validate(gsnap.to_dict())
            interval = routing.route(group.severity, group.label_route).group_interval
            enqueue(group, current.latest.transition_id, now, timedelta(0), interval)
            tx.update(aref, {"muted": None})
            tx.set(gref, group_document(group, now))
            return True

        if run_transaction(run):
            requeued.append(alert.fingerprint)
    return requeued


def repeat(group_id: str, now: datetime, routing: RoutingConfig) -> str | None:
    """Re-notify a group's alerts still firing after `repeat_interval` (not muted now)."""
    from google.cloud import firestore

    client = get_firestore()
    gref = client.collection(GROUPS).document(group_id)
    snapshot = gref.get()
    if not snapshot.exists:
        return None
    group = GroupRecord.model_validate(snapshot.to_dict())
    if group.repeat_at is None or group.repeat_at > now:
        return None
    refs = [client.collection(ALERTS).document(doc_id(fp)) for fp in group.firing]
    stored = [s for s in client.get_all(refs) if s.exists]
    alerts = [AlertRecord.model_validate(s.to_dict()) for s in stored]
    # Records of firing alerts stored before such records were kept while they fire (they expired
    # a month after the alert's last transition): kept from now on.
    expiring = [
        s.reference
        for s, a in zip(stored, alerts, strict=True)
        if a.state == "firing" and (s.to_dict() or {}).get("expire_at") is not None
    ]
    firing = firing_alerts()
    active = silence_store.active(now)
    still = [
        a.latest
        for a in alerts
        if (a.state == "firing" or a.held)
        and not mute_reason(a.latest, a.labels, firing, active, routing, now)
    ]
    route = routing.route(group.severity, group.label_route)
    early = get_store().get(group.incident_id) if group.incident_id else None
    if early is not None and early.state == "acknowledged":
        still = []  # someone is on it: no more reminders

    def run(tx: firestore.Transaction) -> str | None:
        current = GroupRecord.model_validate(gref.get(transaction=tx).to_dict())
        if current.repeat_at is None or current.repeat_at > now:
            return None
        # Read again in the transaction: an acknowledgement that landed since must stop the repeat.
        incident = _incident_in(tx, current.incident_id)
        notification_id = None
        if still and not (incident is not None and incident.state == "acknowledged"):
            current.seq += 1
            notification_id = f"{group_id}-r{current.seq}"
            # Resolved by hand while its alerts still fire: the repeat is a new trigger, which
            # opens a new incident (as PagerDuty does for a dedup_key whose incident is resolved,
            # and Grafana OnCall for a resolved alert group), paged and escalated like the first.
            retrigger = incident is not None and incident.state == "resolved"
            tracked = _retriggered(tx, current, still, now) if retrigger else incident
            carried, left_out = fit_alerts(still)
            notification = Notification(
                notification_id=notification_id,
                kind="repeat",
                group_id=group_id,
                group_labels=current.labels,
                severity=current.severity,
                mention=route.mention,
                **route.receivers(),
                alerts=carried,
                created_at=now,
                incident_id=tracked.id if tracked else None,
                alerts_left_out=left_out,
                pagerduty_key=notification_key(group_id, tracked),
                group_firing=len(current.firing),
            )
            store_notification(tx, notification, list(route.channels), [])
        current.repeat_at = now + route.repeat_interval if current.firing else None
        tx.set(gref, group_document(current, now))
        for ref in expiring:
            tx.update(ref, {"expire_at": None})
        return notification_id

    return run_transaction(run)


def _incident_in(tx: Any, incident_id: str | None) -> Any:
    from functions.fanout.incident_record import Incident
    from functions.fanout.incident_store import INCIDENTS

    if not incident_id:
        return None
    snapshot = _col(INCIDENTS).document(incident_id).get(transaction=tx)
    return Incident.model_validate(snapshot.to_dict()) if snapshot.exists else None


def _retriggered(tx: Any, group: GroupRecord, still: list[Any], now: datetime) -> Any:
    """The new incident of a group whose incident was resolved by hand (None: its severity opens
    none), stored in the repeat's transaction and made the group's."""
    from functions.fanout.incident_store import INCIDENTS, incident_document
    from functions.fanout.pipeline import track_incident

    opened = track_incident(group, still, None, now)
    if opened is not None:
        tx.set(_col(INCIDENTS).document(opened.id), incident_document(opened))
    group.incident_id = opened.id if opened else None
    return opened
