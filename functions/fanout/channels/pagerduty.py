"""PagerDuty Events API v2: one ``trigger`` per firing alert and one ``resolve`` per resolved
alert, with ``dedup_key`` = the alert's fingerprint, so PagerDuty keeps one incident per alert
across re-triggers (repeats) and closes it on resolve. POSTs JSON to ``PAGERDUTY_EVENTS_URL``;
PagerDuty answers 202 when it accepted the event, 400 for an invalid one (not retried), 429 when
rate limited and 5xx when it could not take it (both retried)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from functions.fanout.channels.base import DeliveryError, Retrier, parse_retry_after, step_key
from functions.fanout.channels.registry import register, require
from functions.fanout.models import Notification, iso, summary_of, value_text
from functions.fanout.settings import FanoutSettings
from shared.logging import redact
from shared.messages import AlertTransition

PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


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


@register("pagerduty", requires=("pagerduty_routing_key",))
class PagerDutyChannel:
    name = "pagerduty"

    def __init__(self, settings: FanoutSettings) -> None:
        require("pagerduty", settings)
        self.settings = settings

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        accepted = []
        for alert in notification.alerts:
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
        return {"events": accepted}

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
