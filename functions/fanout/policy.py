"""The fan-out's decisions, over records already loaded: no Firestore, no clock of its own.

- ``admit``: a transition against its alert's record: stale (out of order), held or absorbed
  (flapping after receivers were told it fires), or pending (queued in its group).
- ``enqueue``: when a group with a new pending transition is next flushed.
- ``mute_reason``: whether a silence, the route's time intervals or an inhibition rule mutes a
  transition now.
- ``plan``: what a group flush notifies, and the outcome of each pending transition.

``pipeline.py`` loads the records, calls these and writes the result in a transaction;
``tests/fanout/test_policy.py`` checks them without the emulator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.fanout.matchers import alert_labels
from functions.fanout.records import AlertRecord, GroupRecord, Outcome
from functions.fanout.routes import Flapping, RoutingConfig
from functions.fanout.silences import Silence, silenced_by
from shared.messages import AlertTransition
from shared.notices import NOTICE_KIND


def admit(
    transition: AlertTransition, alert: AlertRecord | None, group_id: str, flap: Flapping
) -> tuple[Outcome, AlertRecord | None]:
    """The transition's outcome and the alert's new record (None: leave the record as it is)."""
    if alert is not None and transition.evaluated_at < alert.latest.evaluated_at:
        return "stale", None  # out of order: a newer transition of this alert is already known
    outcome: Outcome = "pending"
    changes = [c for c in (alert.changes if alert else []) if c > transition.evaluated_at - flap.window]
    changes.append(transition.evaluated_at)
    flapping = len(changes) >= flap.transitions
    held = alert.held if alert else False
    if alert is not None and alert.notified_state == "firing" and (held or flapping):
        # Receivers were told it fires: keep it open instead of resolving and re-firing.
        outcome = "held" if transition.state == "resolved" else "absorbed"
        held = transition.state == "resolved"
    record = AlertRecord(
        fingerprint=transition.fingerprint,
        group_id=group_id,
        severity=transition.severity,
        # A notice does not stay firing: it neither repeats nor inhibits other alerts.
        state="resolved" if transition.kind == NOTICE_KIND else transition.state,
        labels=alert_labels(transition),
        latest=transition,
        changes=changes,
        held=held,
        notified_state=alert.notified_state if alert else None,
        muted=alert.muted if alert else None,
    )
    return outcome, record


def enqueue(
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


def mute_reason(  # noqa: PLR0917 - one call shape, used in three places
    transition: AlertTransition,
    labels: dict[str, str],
    firing: list[AlertRecord],
    silences: list[Silence],
    routing: RoutingConfig,
    now: datetime,
) -> str | None:
    silence = silenced_by(labels, silences, now)
    if silence:
        return f"silenced by {silence}"
    # Notices are one-off: muted by time or inhibition they would never be sent (nothing re-sends
    # them when the interval or the inhibiting alert ends), so only a silence mutes them.
    if transition.kind == NOTICE_KIND:
        return None
    label_route = routing.matched(transition)
    name = label_route.name if label_route else None
    if muted := routing.time_mute(transition.severity, now, name):
        return muted
    for source in firing:
        if source.fingerprint == transition.fingerprint:
            continue
        for rule in routing.inhibit_rules:
            if rule.inhibits(source.labels, labels):
                return f"inhibited by {source.fingerprint} ({source.latest.rule})"
    return None


class Plan(BaseModel):
    items: list[dict[str, Any]]  # transition_id, fingerprint, outcome, reason
    notify: list[AlertTransition]


def plan(  # noqa: PLR0917 - the records a flush decides over
    group: GroupRecord,
    transitions: dict[str, AlertTransition],
    alerts: dict[str, AlertRecord],
    firing: list[AlertRecord],
    silences: list[Silence],
    routing: RoutingConfig,
    now: datetime,
) -> Plan:
    """The flush of ``group``: its pending ``transitions`` (by id) against their ``alerts`` (by
    fingerprint), every ``firing`` alert (inhibition) and the active ``silences``."""
    latest: dict[str, AlertTransition] = {}
    for tid in group.pending:
        t = transitions.get(tid)
        if t is not None and (
            t.fingerprint not in latest or t.evaluated_at >= latest[t.fingerprint].evaluated_at
        ):
            latest[t.fingerprint] = t
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
            reason = mute_reason(t, alert_labels(t), firing, silences, routing, now)
            if reason:
                item["outcome"], item["reason"] = "muted", reason
            else:
                item["outcome"] = "notified"
                notify.append(t)
        items.append(item)
    return Plan(items=items, notify=notify)
