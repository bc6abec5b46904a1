"""The incident lifecycle, pure: what each event does to an incident record (``incident_record.py``).

An incident is opened for a firing group of a severity the incident policy opens them for
(critical and high; others on demand), with a priority (P1..P4 from the severity), the response
and resolution targets of that priority (``respond_by``, ``resolve_by``) and a timeline of
everything that happens to it. Its state moves forward: ``triggered`` → ``acknowledged`` →
``resolved`` (an incident may be resolved without an acknowledgement), except that PagerDuty may
take an acknowledgement back (``incident.unacknowledged``: its acknowledgement timed out, or
someone undid it), which makes the incident ``triggered`` again. Every change is a function
here returning a ``Change`` that says whether anything changed and why not: a second
acknowledgement is a no-op naming who acknowledged first. No HTTP, no Firestore: the store
(``incident_store.py``) runs these inside a transaction; tests run them on plain records.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from functions.fanout.incident_policy import IncidentPolicy
from functions.fanout.incident_record import (
    MAX_LISTED_ALERTS,
    MAX_TIMELINE,
    Change,
    Incident,
    IncidentAlert,
    Review,
    TimelineEntry,
    TimelineKind,
    clipped,
)
from functions.fanout.models import named_rules
from functions.fanout.pagerduty_keys import opened_key
from shared.messages import AlertTransition, Severity
from shared.numbers import readable


def _alert_of(transition: AlertTransition) -> IncidentAlert:
    return IncidentAlert(
        fingerprint=transition.fingerprint,
        rule=transition.rule,
        state=transition.state,
        metric=transition.metric,
        summary=clipped(transition.annotations.get("summary") or transition.rule),
        value=transition.value,
        peak=transition.value,
        threshold=transition.threshold,
        op=transition.op,
        started_at=transition.starts_at,
        resolved_at=(transition.ends_at or transition.evaluated_at)
        if transition.state == "resolved"
        else None,
        runbook=list(transition.runbook),
    )


def _title(severity: Severity, group_labels: dict[str, str], rules: list[str]) -> str:
    where = ", ".join(f"{k}={v}" for k, v in group_labels.items() if v and k != "rule")
    return f"[{severity.upper()}] {named_rules(rules)}" + (f" ({where})" if where else "")


def open_incident(
    id_: str,
    *,
    group_id: str,
    severity: Severity,
    group_labels: dict[str, str],
    firing: list[AlertTransition],
    now: datetime,
    policy: IncidentPolicy,
    by: str | None = None,
    on_demand: bool = False,
) -> Incident:
    """A new incident for ``firing`` (the alerts that opened it), targets from its priority."""
    priority = policy.priority_of(severity)
    target = policy.targets[priority]
    rules = sorted({t.rule for t in firing}) or [group_labels.get("rule", group_id)]
    runbook = next(
        (t.annotations.get("runbook_url") for t in firing if t.annotations.get("runbook_url")), None
    )
    incident = Incident(
        id=id_,
        priority=priority,
        severity=severity,
        title=_title(severity, group_labels, rules),
        group_key=group_id,
        labels={k: v for k, v in group_labels.items() if v},
        rules=rules,
        runbook=runbook,
        opened_at=now,
        respond_by=now + target.respond,
        resolve_by=now + target.resolve,
        opened_on_demand=on_demand,
        pagerduty_key=opened_key(id_, group_id, on_demand=on_demand),
        updated_at=now,
    )
    text = f"{priority} opened: {len(firing)} alert(s) firing" if firing else f"{priority} opened on demand"
    _add(incident, now, "opened", by=by or ("alerts" if not on_demand else None), text=text, ref="opened")
    for transition in firing:
        _join(incident, transition, now)
    incident.next_escalation_at = policy.next_escalation_at(incident)
    return incident


def _add(
    incident: Incident,
    at: datetime,
    kind: TimelineKind,
    *,
    by: str | None = None,
    text: str | None = None,
    ref: str | None = None,
) -> bool:
    if ref is not None and any(e.ref == ref for e in incident.timeline):
        return False
    # In time order: an action reported late (a PagerDuty webhook retried) goes where it happened.
    index = len(incident.timeline)
    while index and incident.timeline[index - 1].at > at:
        index -= 1
    incident.timeline.insert(index, TimelineEntry(at=at, kind=kind, by=by, text=text, ref=ref))
    if len(incident.timeline) > MAX_TIMELINE:
        _make_room(incident)
    incident.updated_at = at
    return True


# What a full timeline drops first, oldest first: notifications, then alerts coming and going,
# then notes. Opening, acknowledgement, escalation, resolution and review are never dropped.
_DROPPABLE: tuple[tuple[TimelineKind, ...], ...] = (
    ("notified",),
    ("alert_joined", "alert_resolved"),
    ("note",),
)


def _make_room(incident: Incident) -> None:
    for kinds in _DROPPABLE:
        oldest = next((i for i, e in enumerate(incident.timeline) if e.kind in kinds), None)
        if oldest is not None:
            del incident.timeline[oldest]
            return


def _join(incident: Incident, transition: AlertTransition, now: datetime) -> None:
    alert = _alert_of(transition)
    current = next((a for a in incident.alerts if a.fingerprint == alert.fingerprint), None)
    if current is not None:
        alert.peak = _peak(current.peak, alert.value, alert.op)
        alert.started_at = min(current.started_at, alert.started_at)
        incident.alerts[incident.alerts.index(current)] = alert
    elif len(incident.alerts) < MAX_LISTED_ALERTS:
        incident.alerts.append(alert)
    elif alert.fingerprint not in incident.unlisted_firing:
        incident.unlisted_firing.append(alert.fingerprint)
    if alert.fingerprint not in incident.fingerprints:
        incident.fingerprints.append(alert.fingerprint)
    if alert.rule not in incident.rules:
        incident.rules.append(alert.rule)
    value = "" if transition.value is None else f" at {readable(transition.value)}"
    limit = (
        "" if transition.threshold is None else f" ({transition.op or 'vs'} {readable(transition.threshold)})"
    )
    _add(
        incident,
        now,
        "alert_joined",
        text=f"{alert.summary}{value}{limit}",
        ref=f"transition:{transition.transition_id}",
    )


def _peak(previous: float | None, value: float | None, op: str | None) -> float | None:
    if previous is None or value is None:
        return value if previous is None else previous
    return min(previous, value) if op in ("<", "<=") else max(previous, value)


def alerts_changed(
    incident: Incident, transitions: list[AlertTransition], now: datetime, policy: IncidentPolicy
) -> Change:
    """Alerts of the incident's group fired or resolved (one notification's worth). When every
    alert of it has resolved, the incident resolves (``by`` = alerts), as PagerDuty resolves an
    incident whose alerts all resolved."""
    if incident.state == "resolved":
        return Change(False, f"incident {incident.id} is resolved; a new one opens for new alerts")
    for transition in transitions:
        if transition.state == "firing":
            _join(incident, transition, now)
            continue
        current = next((a for a in incident.alerts if a.fingerprint == transition.fingerprint), None)
        if current is not None:
            current.state = "resolved"
            current.value = transition.value
            current.resolved_at = transition.ends_at or transition.evaluated_at
        elif transition.fingerprint in incident.unlisted_firing:
            incident.unlisted_firing.remove(transition.fingerprint)
        else:
            continue
        summary = current.summary if current else _alert_of(transition).summary
        _add(
            incident,
            now,
            "alert_resolved",
            text=f"{summary} resolved",
            ref=f"transition:{transition.transition_id}",
        )
    if incident.alerts and not incident.firing and not incident.unlisted_firing:
        resolve(incident, "alerts", now, policy, note="every alert of the incident resolved")
    return Change(True, "alerts recorded")


def acknowledge(incident: Incident, by: str, now: datetime, *, via: str | None = None) -> Change:
    undone = last_unacknowledged_at(incident)
    if undone is not None and now < undone:
        # A webhook delivered late: PagerDuty has taken this acknowledgement back since.
        return Change(False, f"acknowledged at {_at(now)}, before it was unacknowledged at {_at(undone)}")
    if incident.state == "acknowledged":
        return Change(
            False,
            f"already acknowledged by {incident.acknowledged_by} at {_at(incident.acknowledged_at)}",
        )
    if incident.state == "resolved":
        return Change(False, f"already resolved by {incident.resolved_by} at {_at(incident.resolved_at)}")
    incident.state = "acknowledged"
    incident.acknowledged_at = now
    incident.acknowledged_by = by
    incident.next_escalation_at = None  # escalation and repeats stop here
    incident.renotify_current_level = False
    _add(incident, now, "acknowledged", by=by, text=f"acknowledged via {via}" if via else None)
    return Change(True, f"acknowledged by {by}")


def resolve(
    incident: Incident,
    by: str,
    now: datetime,
    policy: IncidentPolicy,
    *,
    note: str | None = None,
    via: str | None = None,
) -> Change:
    if incident.state == "resolved":
        return Change(False, f"already resolved by {incident.resolved_by} at {_at(incident.resolved_at)}")
    incident.state = "resolved"
    incident.resolved_at = now
    incident.resolved_by = by
    incident.next_escalation_at = None
    incident.renotify_current_level = False
    text = " — ".join(part for part in (f"via {via}" if via else None, note) if part) or None
    _add(incident, now, "resolved", by=by, text=text)
    if incident.priority in policy.review_priorities:
        from functions.fanout.review import draft_review

        incident.review = Review(markdown=draft_review(incident, policy), generated_at=now)
        _add(incident, now, "review_drafted", by="ion-ops", text="post-incident review draft", ref="review")
    return Change(True, f"resolved by {by}")


def unacknowledge(incident: Incident, by: str, now: datetime, *, ref: str) -> Change:
    """PagerDuty took the acknowledgement back (its acknowledgement timeout, or someone undid it):
    the incident is ``triggered`` again, and, as PagerDuty does, the current escalation level is
    notified again at once (the flush tick, ``escalate``), then has its full escalation timeout
    again before the next step. ``ref`` (the webhook event) makes it once; one that occurred
    before the current acknowledgement is about an earlier one and changes nothing."""
    if any(e.ref == ref for e in incident.timeline):
        return Change(False, "unacknowledged before (the same event)")
    if incident.state == "resolved":
        return Change(False, f"already resolved by {incident.resolved_by} at {_at(incident.resolved_at)}")
    if incident.state == "triggered" or incident.acknowledged_at is None:
        return Change(False, "not acknowledged: nothing to take back")
    if now < incident.acknowledged_at:
        return Change(
            False,
            f"acknowledged again by {incident.acknowledged_by} at {_at(incident.acknowledged_at)}, "
            f"after this was unacknowledged at {_at(now)}",
        )
    was = incident.acknowledged_by
    incident.state = "triggered"
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.next_escalation_at = now  # due at once: the current level is notified again
    incident.renotify_current_level = True
    level = incident.escalation_level
    text = f"acknowledgement by {was} taken back: level {level} is notified again, escalation resumes"
    _add(incident, now, "unacknowledged", by=by, text=text, ref=ref)
    return Change(True, f"unacknowledged by {by}: level {level} is notified again")


def last_unacknowledged_at(incident: Incident) -> datetime | None:
    return max((e.at for e in incident.timeline if e.kind == "unacknowledged"), default=None)


def add_note(incident: Incident, by: str, text: str, now: datetime, *, ref: str | None = None) -> Change:
    """A note; one with a ``ref`` (what it came from: a webhook event) is recorded once."""
    if not _add(incident, now, "note", by=by, text=text, ref=ref):
        return Change(False, "noted before")
    return Change(True, "note added")


def record_notified(
    incident: Incident, ref: str, text: str, now: datetime, *, by: str | None = None
) -> Change:
    """A notification of the incident sent (``ref`` names the delivery: recorded once)."""
    if not _add(incident, now, "notified", by=by, text=text, ref=ref):
        return Change(False, "recorded before")
    return Change(True, "notification recorded")


def escalate(incident: Incident, now: datetime, policy: IncidentPolicy) -> Change:
    """The next escalation step, if it is due and the incident is still unacknowledged."""
    if incident.state != "triggered":
        return Change(False, f"incident is {incident.state}: no escalation")
    due = incident.next_escalation_at
    if due is None:
        return Change(False, "no escalation step left")
    if due > now:
        return Change(False, f"next escalation is due at {_at(due)}")
    steps = policy.steps(incident.priority)
    if incident.renotify_current_level:
        incident.renotify_current_level = False
        incident.next_escalation_at = policy.escalation_after_renotify(incident, due)
        return Change(True, f"level {incident.escalation_level} notified again")
    if incident.escalation_level >= len(steps):
        # Scheduled under a policy with more steps (a deploy changed it since): none is left.
        incident.next_escalation_at = None
        return Change(False, "no escalation step left under the current policy")
    step = steps[incident.escalation_level]
    incident.escalation_level += 1
    level = incident.escalation_level
    late = now - incident.respond_by
    _add(
        incident,
        now,
        "escalated",
        by="ion-ops",
        text=f"level {level}: {step.describe()}; not acknowledged {_minutes(late)} after respond_by",
        ref=f"escalation:{level}",
    )
    incident.next_escalation_at = policy.next_escalation_at(incident)
    return Change(True, f"escalated to level {level}")


def _at(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else "?"


def _minutes(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    return f"{minutes} min"
