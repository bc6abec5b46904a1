"""PagerDuty's Events API v2 stand-in: validates each event as PagerDuty does and answers 202,
or as told: an outage (for every event or some dedup_keys), a slow answer. It records what it
accepted for the tests, and the incidents PagerDuty would hold (``incidents``): a trigger opens
one for its dedup_key unless one is open, which it joins; acknowledge and resolve apply to the open
one and are dropped when there is none, as PagerDuty documents."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tests.fanout.standin_http import JsonHandler, StandInServer

PD_SEVERITIES = {"critical", "error", "warning", "info"}
# "Events API payloads are limited to 512 KB" (PagerDuty's Events API v2 overview).
MAX_EVENT_BYTES = 512 * 1024


@dataclass
class PagerDutyIncident:
    """What PagerDuty holds for a dedup_key: opened by a trigger, later triggers appended."""

    dedup_key: str
    status: str = "triggered"
    triggers: int = 1


class PagerDutyStandIn(StandInServer):
    """Events API v2 at ``url``: validates each event and answers 202 like PagerDuty."""

    def __init__(self, routing_key: str = "R0UT1NGKEY0123456789ABCDEFGHIJKL") -> None:
        super().__init__(_PagerDutyHandler)
        self.routing_key = routing_key
        self.events: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # monotonic time of each accepted event (benches)
        self.rejected: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        # An outage for some incidents only: dedup_key -> the status answered for its events.
        self.fail_for: dict[str, int] = {}
        # A slow PagerDuty: each request is answered this many seconds late (and then taken).
        self.delay_seconds = 0.0
        # PagerDuty's rate limit per routing key (120 events a minute): past this many events in
        # the current window, 429 without Retry-After, as PagerDuty answers; ``next_window`` resets.
        self.events_per_window: int | None = None
        self.window_taken = 0
        self.throttled = 0
        # An error answer quoting the request it refuses, as some gateways' do (routing key and all).
        self.echo_request = False
        # The incidents PagerDuty holds, oldest first (``take``).
        self.incidents: list[PagerDutyIncident] = []

    def take(self, event: dict[str, Any]) -> None:
        """An accepted event applied to PagerDuty's incidents (under ``lock``)."""
        key = event.get("dedup_key")
        current = next(
            (i for i in reversed(self.incidents) if i.dedup_key == key and i.status != "resolved"), None
        )
        action = event["event_action"]
        if action == "trigger":
            if current is None:
                self.incidents.append(PagerDutyIncident(dedup_key=str(key)))
            else:
                current.triggers += 1
        elif current is not None:  # acknowledge or resolve: dropped without an open incident
            current.status = "acknowledged" if action == "acknowledge" else "resolved"

    def open_incidents(self) -> list[PagerDutyIncident]:
        with self.lock:
            return [i for i in self.incidents if i.status != "resolved"]

    def next_window(self) -> None:
        with self.lock:
            self.window_taken = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"


def about_alert(event: dict[str, Any], fingerprint: str) -> bool:
    """An event about an alert: its group's trigger listing it (``custom_details.alerts``), or one
    keyed by its fingerprint (a notice; the previous version's one event per alert)."""
    details = (event.get("payload") or {}).get("custom_details") or {}
    listed = details.get("alerts") if isinstance(details, dict) else None
    return event.get("dedup_key") == fingerprint or any(
        isinstance(a, dict) and a.get("fingerprint") == fingerprint for a in listed or []
    )


def pagerduty_errors(event: Any, routing_key: str, size: int = 0) -> list[str]:
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = []
    if size > MAX_EVENT_BYTES:
        errors.append(f"Event object is too large ({size} bytes; at most {MAX_EVENT_BYTES})")
    if event.get("routing_key") != routing_key:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in {"trigger", "acknowledge", "resolve"}:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if action in {"acknowledge", "resolve"} and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is missing, blank or longer than 1024")
            if not payload.get("source"):
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
            for optional in ("component", "group", "class"):
                if optional in payload and not isinstance(payload[optional], str):
                    errors.append(f"'payload.{optional}' must be a string when given")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("'payload.custom_details' must be an object when given")
        links = event.get("links", [])
        if not isinstance(links, list) or not all(isinstance(x, dict) and x.get("href") for x in links):
            errors.append("'links' must be a list of objects with an 'href'")
    return errors


class _PagerDutyHandler(JsonHandler):
    def do_POST(self) -> None:
        pd: PagerDutyStandIn = self.server.standin  # type: ignore[attr-defined]
        raw = self._body()
        if pd.delay_seconds:
            time.sleep(pd.delay_seconds)
        echoed = {"request": raw.decode(errors="replace")} if pd.echo_request else {}
        if pd.fail_status:
            self._answer(pd.fail_status, {"status": "unavailable", "message": "try again", **echoed})
            return
        try:
            event = json.loads(raw)
        except ValueError:
            self._answer(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["bad JSON"]}
            )
            return
        failing = pd.fail_for.get(event.get("dedup_key")) if isinstance(event, dict) else None
        if failing:
            self._answer(failing, {"status": "unavailable", "message": "try again"})
            return
        errors = pagerduty_errors(event, pd.routing_key, len(raw))
        with pd.lock:
            throttled = (
                not errors and pd.events_per_window is not None and pd.window_taken >= pd.events_per_window
            )
            if throttled:
                pd.throttled += 1
            elif not errors:
                pd.window_taken += 1
        if throttled:
            message = "Requests for this service are arriving too quickly. Please retry later."
            self._answer(429, {"status": "throttle event", "message": message})
            return
        with pd.lock:
            if errors:
                pd.rejected.append(event)
            else:
                pd.events.append(event)
                pd.received_at.append(time.monotonic())
                pd.take(event)
        if errors:
            self._answer(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors, **echoed},
            )
            return
        self._answer(
            202, {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}
        )
