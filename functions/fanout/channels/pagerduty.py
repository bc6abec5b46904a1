"""PagerDuty Events API v2 as Alertmanager sends it: one PagerDuty incident per alert group's
incident, keyed by its ``dedup_key`` (``pagerduty_keys.py``), and one event per notification: a
``trigger`` while any alert of the group fires (``[FIRING:12] ...``, the first alerts in
``custom_details``; repeats and escalations re-trigger it, which PagerDuty appends to the open
incident), a ``resolve`` once none does. A notice (a one-off event, never resolved) is a trigger
of its own, keyed by its fingerprint. A notification stored by the previous version, or of an
incident it opened (``pagerduty_key`` None), goes as it did: one event per alert, keyed by the
alert's fingerprint. POSTs JSON to ``PAGERDUTY_EVENTS_URL``; PagerDuty answers 202 when it
accepted the event, 400 for an invalid one (not retried), 429 when rate limited and 5xx when it
could not take it (both retried)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from functions.fanout.channels.base import DeliveryError, Retrier, parse_retry_after, step_key
from functions.fanout.channels.registry import register, require
from functions.fanout.models import Notification, iso, named_rules, summary_of, value_text
from functions.fanout.settings import FanoutSettings
from shared.logging import redact
from shared.messages import AlertTransition
from shared.notices import NOTICE_KIND

PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
# A group's trigger details this many of its alerts at most, in this many bytes of JSON: a storm's
# event stays far under PagerDuty's 512 KB (the rest are counted, and listed in Slack and the API).
DETAILED_ALERTS = 20
DETAILS_BUDGET = 64_000
CLIPPED = 300
_LATE = re.compile(r"published (\d+) min")


def event_for(
    alert: AlertTransition, settings: FanoutSettings, *, repeat: bool = False, escalation: int = 0
) -> dict[str, Any]:
    if alert.state == "resolved":
        return {
            "routing_key": settings.pagerduty_routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
        }
    summary = summary_of(alert)
    if escalation:
        summary = f"ESCALATED (level {escalation}), NOT ACKNOWLEDGED: {summary}"
    elif repeat:
        summary = f"STILL FIRING: {summary}"
    details: dict[str, Any] = {
        "rule": alert.rule,
        "kind": alert.kind,
        "metric": alert.metric,
        "value": alert.value,
        "threshold": alert.threshold,
        "op": alert.op,
        "labels": alert.labels,
        "runbook": alert.runbook,
        "starts_at": iso(alert.starts_at),
        "transition_id": alert.transition_id,
    }
    links = [{"href": alert.dashboard_url or settings.dashboard_url, "text": "Dashboard"}]
    links.append({"href": settings.public_url.rstrip("/") + "/v1/silences", "text": "Silences"})
    return {
        "routing_key": settings.pagerduty_routing_key,
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": (f"{summary} — {value_text(alert)}")[:1024],
            "source": alert.labels.get("service") or alert.labels.get("instance") or "ion-ops",
            "severity": PD_SEVERITY[alert.severity],
            "timestamp": iso(alert.evaluated_at),
            "class": alert.rule,
            "custom_details": details,
            # Optional strings: left out, not null, when the alert has no such label.
            **{
                field: value
                for field, value in (
                    ("component", alert.labels.get("service")),
                    ("group", alert.labels.get("region")),
                )
                if value
            },
        },
        "links": links,
        "client": "ION Ops",
        "client_url": settings.public_url,
    }


def group_event(notification: Notification, settings: FanoutSettings) -> dict[str, Any] | None:
    """The one event of a notification for its group's PagerDuty incident: ``trigger`` while any
    alert of the group fires, ``resolve`` once none does; None when it has no alert (notices
    only), or announces only resolves while others fire and has no open incident of ours (resolved
    by hand: its PagerDuty incident too; the group's next repeat opens a new one of each)."""
    key = notification.pagerduty_key
    alerts = [a for a in notification.alerts if a.kind != NOTICE_KIND]
    if key is None or not alerts:
        return None
    firing = [a for a in alerts if a.state == "firing"]
    still = notification.group_firing
    if still is None:  # a group's state not recorded: what the notification itself says
        still = len(firing) + notification.alerts_left_out
    if still == 0:
        return {"routing_key": settings.pagerduty_routing_key, "event_action": "resolve", "dedup_key": key}
    if not firing and not notification.reminder and notification.incident_id is None:
        return None
    first = (firing or alerts)[0]
    labels = {**first.labels, **{k: v for k, v in notification.group_labels.items() if v}}
    return {
        "routing_key": settings.pagerduty_routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": group_summary(notification, firing, still)[:1024],
            "source": labels.get("service") or labels.get("instance") or "ion-ops",
            "severity": PD_SEVERITY[notification.severity],
            "timestamp": iso(max(a.evaluated_at for a in alerts)),
            "class": named_rules(sorted({a.rule for a in alerts})),
            "custom_details": group_details(notification, firing, still),
            **{
                field: labels[label]
                for field, label in (("component", "service"), ("group", "region"))
                if labels.get(label)
            },
        },
        "links": [
            {"href": first.dashboard_url or settings.dashboard_url, "text": "Dashboard"},
            {"href": settings.public_url.rstrip("/") + "/v1/silences", "text": "Silences"},
        ],
        "client": "ION Ops",
        "client_url": settings.public_url,
    }


def group_summary(notification: Notification, firing: list[AlertTransition], still: int) -> str:
    """``[FIRING:12] p95-latency (service=..., region=...)``; one alert firing, its own summary and
    value; a reminder says which, and a late delivery how late (as the per-alert summary did)."""
    if still == 1 and len(firing) == 1:
        what = f"{_unmarked(firing[0])} — {value_text(firing[0])}"
    else:
        where = ", ".join(f"{k}={v}" for k, v in notification.group_labels.items() if v and k != "rule")
        rules = named_rules(sorted({a.rule for a in notification.alerts if a.kind != NOTICE_KIND}))
        what = rules + (f" ({where})" if where else "")
    summary = f"[FIRING:{still}] {what}"
    level = notification.escalation_level
    if notification.kind == "escalation":
        summary = f"ESCALATED (level {level}), NOT ACKNOWLEDGED: {summary}"
    elif notification.kind == "unacknowledged":
        summary = f"ACKNOWLEDGEMENT TAKEN BACK (level {level}), NOT ACKNOWLEDGED: {summary}"
    elif notification.kind == "repeat":
        summary = f"STILL FIRING: {summary}"
    late = [
        int(m.group(1)) for a in notification.alerts if (m := _LATE.search(a.annotations.get("late", "")))
    ]
    return f"[LATE {max(late)} min] {summary}" if late else summary


def _unmarked(alert: AlertTransition) -> str:
    """The alert's summary without the ``[LATE n min]`` its late delivery put first (said once,
    first, for the whole event)."""
    text = summary_of(alert)
    late = alert.annotations.get("late") and text.startswith("[LATE ")
    return text.split("] ", 1)[-1] if late else text


def group_details(notification: Notification, firing: list[AlertTransition], still: int) -> dict[str, Any]:
    """Counts, the group, and the first alerts (firing first) within ``DETAILED_ALERTS`` and
    ``DETAILS_BUDGET``; the others counted."""
    alerts = [a for a in notification.alerts if a.kind != NOTICE_KIND]
    ordered = firing + [a for a in alerts if a.state != "firing"]
    details: dict[str, Any] = {
        "firing": still,
        "resolved": len(alerts) - len(firing),
        "notification": notification.notification_id,
        "kind": notification.kind,
        "incident_id": notification.incident_id,
        "group": notification.group_labels,
        "runbook": [step[:CLIPPED] for step in ordered[0].runbook[:10]],
        "alerts": [],
    }
    spent = len(json.dumps(details))
    for alert in ordered[:DETAILED_ALERTS]:
        one = alert_details(alert)
        size = len(json.dumps(one)) + 2
        if spent + size > DETAILS_BUDGET:
            break
        details["alerts"].append(one)
        spent += size
    details["alerts_not_shown"] = len(ordered) - len(details["alerts"]) + notification.alerts_left_out
    return details


def alert_details(alert: AlertTransition) -> dict[str, Any]:
    """One alert in a group's trigger, each text clipped."""
    return {
        "rule": alert.rule,
        "state": alert.state,
        "summary": summary_of(alert)[:CLIPPED],
        "value": alert.value,
        "threshold": alert.threshold,
        "op": alert.op,
        "labels": {k[:CLIPPED]: v[:CLIPPED] for k, v in list(alert.labels.items())[:30]},
        "starts_at": iso(alert.starts_at),
        "fingerprint": alert.fingerprint[:CLIPPED],
    }


@register("pagerduty", requires=("pagerduty_routing_key",))
class PagerDutyChannel:
    name = "pagerduty"

    def __init__(self, settings: FanoutSettings) -> None:
        require("pagerduty", settings)
        self.settings = settings

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        if notification.pagerduty_key is None:
            return {"events": self._per_alert(notification, notification.alerts, retrier)}
        notices = [a for a in notification.alerts if a.kind == NOTICE_KIND]
        accepted = self._per_alert(notification, notices, retrier)
        event = group_event(notification, self.settings)
        if event is not None:
            action, key = event["event_action"], event["dedup_key"]
            # One step per notification: a retry or re-drive after PagerDuty took it sends nothing.
            answer = retrier.step(step_key(action, key), f"pagerduty {action}", lambda: self._post(event))
            accepted.append({"dedup_key": answer.get("dedup_key", key), "action": action})
        return {"events": accepted}

    def _per_alert(
        self, notification: Notification, alerts: list[AlertTransition], retrier: Retrier
    ) -> list[dict[str, Any]]:
        accepted = []
        for alert in alerts:
            event = event_for(
                alert, self.settings, repeat=notification.reminder, escalation=notification.escalation_level
            )
            # One step per event: a retry after one event was accepted sends only the others.
            answer = retrier.step(
                step_key(event["event_action"], alert.transition_id),
                f"pagerduty {event['event_action']}",
                lambda event=event: self._post(event),
            )
            accepted.append(
                {"dedup_key": answer.get("dedup_key", alert.fingerprint), "action": event["event_action"]}
            )
        return accepted

    def _post(self, event: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.settings.pagerduty_events_url,
            data=json.dumps(event).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.request_timeout_seconds) as response:
                body = response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            # PagerDuty (or a proxy before it) may quote the event, routing key and all: the
            # detail goes to logs, dead-letter reasons and the incident's timeline.
            answered = exc.read()[:8192].decode(errors="replace")
            detail = redact(answered, [self.settings.pagerduty_routing_key])[:500]
            retryable = exc.code == 429 or exc.code >= 500
            raise DeliveryError(
                f"PagerDuty answered {exc.code}: {detail}",
                retryable=retryable,
                retry_after=parse_retry_after(exc.headers.get("Retry-After")) if exc.headers else None,
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"PagerDuty request failed: {exc}", retryable=True) from None
        if status != 202:
            raise DeliveryError(f"PagerDuty answered {status}, expected 202", retryable=status >= 500)
        try:
            return dict(json.loads(body or b"{}"))
        except ValueError:
            return {}
