"""From alert transitions to notifications: grouping, flapping, silences and inhibition.

State in Firestore (every write in a transaction, so a retry or a second instance never sees
half of it):

- ``fanout_transitions/{transition_id}``: each transition received once, with its group, its
  outcome and the notification that announced it (also the source of the daily digest).
- ``fanout_alerts/{fingerprint}``: each alert's current state, recent state changes (flapping),
  whether a resolve is held, and what receivers were last told (``notified_state``).
- ``fanout_groups/{group_id}``: the transitions waiting to be notified (``pending``), when the
  group is next flushed (``next_flush_at``) and re-notified (``repeat_at``), and its firing alerts.
- ``fanout_notifications/{notification_id}``: each notification and its per-channel deliveries.

A transition is added to its group's pending list; the group is flushed (one notification) when
``next_flush_at`` has come: at once for a new group with ``group_wait: 0`` (so a critical alert
is sent from the Pub/Sub handler itself), otherwise by the flush tick (Cloud Scheduler, every
minute), which also sends repeats, releases flapping holds, re-notifies alerts whose silence or
inhibition ended and re-drives notifications an instance left unfinished.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from functions.fanout import silences as silence_store
from functions.fanout.delivery import NOTIFICATIONS, deliver, store_notification
from functions.fanout.matchers import alert_labels
from functions.fanout.models import Notification, doc_id
from functions.fanout.routes import RoutingConfig, get_routing
from functions.fanout.settings import get_fanout_settings
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.messages import AlertTransition, Severity

TRANSITIONS = "fanout_transitions"
ALERTS = "fanout_alerts"
GROUPS = "fanout_groups"
KEEP = timedelta(days=30)
log = get_logger("fanout.pipeline")

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


def _col(name: str) -> Any:
    return get_firestore().collection(name)


def _field_filter(field: str, op: str, value: Any) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(field, op, value)


# --- ingest ------------------------------------------------------------------------------------


def ingest(transition: AlertTransition, now: datetime, routing: RoutingConfig) -> GroupRecord:
    """Record a transition once and queue it in its group (or hold/absorb it while flapping)."""
    from google.cloud import firestore

    client = get_firestore()
    group_id = routing.group_id(transition)
    route = routing.route(transition.severity)
    tref = client.collection(TRANSITIONS).document(doc_id(transition.transition_id))
    aref = client.collection(ALERTS).document(doc_id(transition.fingerprint))
    gref = client.collection(GROUPS).document(group_id)

    def run(tx: firestore.Transaction) -> GroupRecord:
        tsnap, asnap, gsnap = (ref.get(transaction=tx) for ref in (tref, aref, gref))
        group = (
            GroupRecord.model_validate(gsnap.to_dict())
            if gsnap.exists
            else GroupRecord(
                group_id=group_id, severity=transition.severity, labels=routing.group_labels(transition)
            )
        )
        if tsnap.exists:
            return group  # a redelivery: recorded before
        alert = AlertRecord.model_validate(asnap.to_dict()) if asnap.exists else None
        outcome: Outcome = "pending"
        flap = routing.flapping
        if alert is not None and transition.evaluated_at < alert.latest.evaluated_at:
            outcome = "stale"  # out of order: a newer transition of this alert is already known
        else:
            changes = [
                c for c in (alert.changes if alert else []) if c > transition.evaluated_at - flap.window
            ]
            changes.append(transition.evaluated_at)
            flapping = len(changes) >= flap.transitions
            held = alert.held if alert else False
            if alert is not None and alert.notified_state == "firing" and (held or flapping):
                # Receivers were told it fires: keep it open instead of resolving and re-firing.
                outcome = "held" if transition.state == "resolved" else "absorbed"
                held = transition.state == "resolved"
            alert = AlertRecord(
                fingerprint=transition.fingerprint,
                group_id=group_id,
                severity=transition.severity,
                state=transition.state,
                labels=alert_labels(transition),
                latest=transition,
                changes=changes,
                held=held,
                notified_state=alert.notified_state if alert else None,
                muted=alert.muted if alert else None,
            )
            if outcome == "pending":
                _enqueue(group, transition.transition_id, now, route.group_wait, route.group_interval)
            tx.set(aref, {**alert.model_dump(mode="python"), "updated_at": now, "expire_at": now + KEEP})
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
        tx.set(gref, {**group.model_dump(mode="python"), "expire_at": now + KEEP})
        log.info(
            "transition %s of %s: %s",
            transition.transition_id,
            transition.fingerprint,
            outcome,
            extra={"group_id": group_id, "state": transition.state, "alert_severity": transition.severity},
        )
        return group

    return run_transaction(run)


def _enqueue(
    group: GroupRecord, transition_id: str, now: datetime, wait: timedelta, interval: timedelta
) -> None:
    if transition_id in group.pending:
        return
    if not group.pending:
        if group.last_flush_at is None or not group.firing:
            # A new group (or one whose alerts all resolved): wait group_wait for its first alerts.
            group.next_flush_at = now + wait
        else:
            # Notified before: its next change is notified group_interval after the last one.
            group.next_flush_at = max(now, group.last_flush_at + interval)
    group.pending.append(transition_id)


# --- flush -------------------------------------------------------------------------------------


def _mute_reason(  # noqa: PLR0917 - one call shape, used in three places
    transition: AlertTransition,
    labels: dict[str, str],
    firing: list[AlertRecord],
    silences: list[silence_store.Silence],
    routing: RoutingConfig,
    now: datetime,
) -> str | None:
    silence = silence_store.silenced_by(labels, silences, now)
    if silence:
        return f"silenced by {silence}"
    for source in firing:
        if source.fingerprint == transition.fingerprint:
            continue
        for rule in routing.inhibit_rules:
            if rule.inhibits(source.labels, labels):
                return f"inhibited by {source.fingerprint} ({source.latest.rule})"
    return None


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
        plan = _plan(group, now, routing)

        def run(tx: firestore.Transaction, group: GroupRecord = group, plan: _Plan = plan) -> str | None:
            current = GroupRecord.model_validate(gref.get(transaction=tx).to_dict())
            if current.pending != group.pending:
                raise _Changed
            return _commit(tx, current, plan, now, routing)

        try:
            return run_transaction(run)
        except _Changed:
            continue
    raise RuntimeError(f"group {group_id} kept changing while being flushed")


class _Changed(Exception):
    pass


class _Plan(BaseModel):
    items: list[dict[str, Any]]  # transition_id, fingerprint, outcome, reason
    notify: list[AlertTransition]


def _plan(group: GroupRecord, now: datetime, routing: RoutingConfig) -> _Plan:
    client = get_firestore()
    snaps = client.get_all([client.collection(TRANSITIONS).document(doc_id(t)) for t in group.pending])
    loaded = [AlertTransition.model_validate(s.to_dict()["transition"]) for s in snaps if s.exists]
    transitions = {t.transition_id: t for t in loaded}
    alert_snaps = client.get_all([client.collection(ALERTS).document(doc_id(t.fingerprint)) for t in loaded])
    records = [AlertRecord.model_validate(s.to_dict()) for s in alert_snaps if s.exists]
    alerts = {a.fingerprint: a for a in records}
    latest: dict[str, AlertTransition] = {}
    for tid in group.pending:
        t = transitions.get(tid)
        if t is not None and (
            t.fingerprint not in latest or t.evaluated_at >= latest[t.fingerprint].evaluated_at
        ):
            latest[t.fingerprint] = t
    firing = firing_alerts()
    active = silence_store.active(now)
    items: list[dict[str, Any]] = []
    notify: list[AlertTransition] = []
    for tid in group.pending:
        t = transitions.get(tid)
        if t is None:
            continue
        item: dict[str, Any] = {"transition_id": tid, "fingerprint": t.fingerprint, "reason": None}
        alert = alerts.get(t.fingerprint)
        if latest[t.fingerprint].transition_id != tid:
            item["outcome"] = "superseded"
        elif t.state == "resolved":
            if alert is not None and alert.notified_state == "firing":
                # A resolve of an announced alert always goes out, silenced or not: no page is left open.
                item["outcome"] = "notified"
                notify.append(t)
            else:
                item["outcome"] = "unannounced"
        else:
            reason = _mute_reason(t, alert_labels(t), firing, active, routing, now)
            if reason:
                item["outcome"], item["reason"] = "muted", reason
            else:
                item["outcome"] = "notified"
                notify.append(t)
        items.append(item)
    return _Plan(items=items, notify=notify)


def _commit(tx: Any, group: GroupRecord, plan: _Plan, now: datetime, routing: RoutingConfig) -> str | None:
    route = routing.route(group.severity)
    notification_id: str | None = None
    if plan.notify:
        group.seq += 1
        notification_id = f"{group.group_id}-n{group.seq}"
        notification = Notification(
            notification_id=notification_id,
            kind="notify",
            group_id=group.group_id,
            group_labels=group.labels,
            severity=group.severity,
            mention=route.mention,
            alerts=plan.notify,
            created_at=now,
        )
        store_notification(tx, notification, list(route.channels), plan.items)
    firing = set(group.firing)
    for item in plan.items:
        tx.update(
            _col(TRANSITIONS).document(doc_id(item["transition_id"])),
            {
                "outcome": item["outcome"],
                "reason": item["reason"],
                "notification_id": notification_id if item["outcome"] == "notified" else None,
            },
        )
    for t in plan.notify:
        firing.add(t.fingerprint) if t.state == "firing" else firing.discard(t.fingerprint)
        tx.update(_col(ALERTS).document(doc_id(t.fingerprint)), {"notified_state": t.state, "muted": None})
    for item in plan.items:
        if item["outcome"] == "muted":
            tx.update(_col(ALERTS).document(doc_id(item["fingerprint"])), {"muted": item["reason"]})
    group.pending = []
    group.next_flush_at = None
    if plan.notify:
        group.last_flush_at = now
        group.firing = sorted(firing)
        group.repeat_at = now + route.repeat_interval if group.firing else None
    tx.set(
        _col(GROUPS).document(group.group_id), {**group.model_dump(mode="python"), "expire_at": now + KEEP}
    )
    return notification_id


# --- the Pub/Sub path --------------------------------------------------------------------------


def handle_transition(transition: AlertTransition) -> list[str]:
    """Ingest, flush the group if due, deliver what announces this transition. Idempotent."""
    routing = get_routing()
    now = utcnow()
    group = ingest(transition, now, routing)
    if group.next_flush_at is not None and group.next_flush_at <= now:
        flush(group.group_id, now, routing)
    stored = _col(TRANSITIONS).document(doc_id(transition.transition_id)).get().to_dict() or {}
    notification_id = stored.get("notification_id")
    if notification_id:
        deliver(notification_id)
        return [notification_id]
    return []


# --- the flush tick ----------------------------------------------------------------------------


def tick() -> dict[str, Any]:
    """Everything time-driven; safe to run twice at once and to retry."""
    routing = get_routing()
    now = utcnow()
    report: dict[str, Any] = {
        "released": release_holds(now, routing),
        "unmuted": requeue_unmuted(now, routing),
    }
    flushed = []
    due = _col(GROUPS).where(filter=_field_filter("next_flush_at", "<=", now)).stream()
    for snapshot in due:
        nid = flush(snapshot.id, now, routing)
        if nid:
            flushed.append(nid)
    repeats = []
    for snapshot in _col(GROUPS).where(filter=_field_filter("repeat_at", "<=", now)).stream():
        nid = repeat(snapshot.id, now, routing)
        if nid:
            repeats.append(nid)
    errors = 0
    stale = now - timedelta(seconds=get_fanout_settings().redrive_after_seconds)
    unfinished = _col(NOTIFICATIONS).where(filter=_field_filter("complete", "==", False)).stream()
    redrive = [s.id for s in unfinished if s.to_dict()["created_at"] <= stale]
    for nid in [*flushed, *repeats, *redrive]:
        try:
            deliver(nid)
        except Exception:  # one notification's trouble must not stop the tick
            errors += 1
            log.exception("delivery of %s failed; the next tick re-drives it", nid)
    report.update(flushed=flushed, repeats=repeats, redriven=redrive, errors=errors)
    return report


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
            _enqueue(group, current.latest.transition_id, now, timedelta(0), timedelta(0))
            tx.update(aref, {"held": False})
            tx.update(
                _col(TRANSITIONS).document(doc_id(current.latest.transition_id)), {"outcome": "pending"}
            )
            tx.set(gref, {**group.model_dump(mode="python"), "expire_at": now + KEEP})
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
        if _mute_reason(alert.latest, alert.labels, firing, active, routing, now):
            continue
        gref = client.collection(GROUPS).document(alert.group_id)
        route = routing.route(alert.severity)

        def run(
            tx: firestore.Transaction, alert: AlertRecord = alert, gref: Any = gref, route: Any = route
        ) -> bool:
            aref = _col(ALERTS).document(doc_id(alert.fingerprint))
            current = AlertRecord.model_validate(aref.get(transaction=tx).to_dict())
            gsnap = gref.get(transaction=tx)
            if not current.muted or current.state != "firing" or not gsnap.exists:
                return False
            group = GroupRecord.model_validate(gsnap.to_dict())
            _enqueue(group, current.latest.transition_id, now, timedelta(0), route.group_interval)
            tx.update(aref, {"muted": None})
            tx.set(gref, {**group.model_dump(mode="python"), "expire_at": now + KEEP})
            return True

        if run_transaction(run):
            requeued.append(alert.fingerprint)
    return requeued


def repeat(group_id: str, now: datetime, routing: RoutingConfig) -> str | None:
    """Re-notify a group's alerts still firing after `repeat_interval` (not muted now)."""
    from google.cloud import firestore

    client = get_firestore()
    gref = client.collection(GROUPS).document(group_id)
    group = GroupRecord.model_validate(gref.get().to_dict())
    if group.repeat_at is None or group.repeat_at > now:
        return None
    snaps = client.get_all([client.collection(ALERTS).document(doc_id(fp)) for fp in group.firing])
    alerts = [AlertRecord.model_validate(s.to_dict()) for s in snaps if s.exists]
    firing = firing_alerts()
    active = silence_store.active(now)
    still = [
        a.latest
        for a in alerts
        if (a.state == "firing" or a.held)
        and not _mute_reason(a.latest, a.labels, firing, active, routing, now)
    ]
    route = routing.route(group.severity)

    def run(tx: firestore.Transaction) -> str | None:
        current = GroupRecord.model_validate(gref.get(transaction=tx).to_dict())
        if current.repeat_at is None or current.repeat_at > now:
            return None
        notification_id = None
        if still:
            current.seq += 1
            notification_id = f"{group_id}-r{current.seq}"
            notification = Notification(
                notification_id=notification_id,
                kind="repeat",
                group_id=group_id,
                group_labels=current.labels,
                severity=current.severity,
                mention=route.mention,
                alerts=still,
                created_at=now,
            )
            store_notification(tx, notification, list(route.channels), [])
        current.repeat_at = now + route.repeat_interval if current.firing else None
        tx.set(gref, {**current.model_dump(mode="python"), "expire_at": now + KEEP})
        return notification_id

    return run_transaction(run)
