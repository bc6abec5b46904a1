"""Incident documents for the report tests, in the shape the fan-out writes to ``incidents/<id>``
(the shared incident schema): deadlines from the priority's targets, timestamps as UTC datetimes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

TARGETS = {
    "P1": (timedelta(minutes=15), timedelta(hours=4)),
    "P2": (timedelta(hours=1), timedelta(hours=24)),
    "P3": (timedelta(hours=4), timedelta(days=3)),
    "P4": (timedelta(hours=24), timedelta(days=7)),
}
SEVERITY = {"P1": "critical", "P2": "high", "P3": "medium", "P4": "low"}


def incident_doc(
    incident_id: str,
    priority: str,
    opened_at: datetime,
    *,
    acknowledged_after: timedelta | None = None,
    resolved_after: timedelta | None = None,
    title: str | None = None,
    region: str = "us-central1",
) -> dict[str, Any]:
    respond, resolve = TARGETS[priority]
    acknowledged_at = opened_at + acknowledged_after if acknowledged_after is not None else None
    resolved_at = opened_at + resolved_after if resolved_after is not None else None
    state = "resolved" if resolved_at else "acknowledged" if acknowledged_at else "triggered"
    timeline: list[dict[str, Any]] = [{"at": opened_at, "kind": "opened", "by": None, "text": None}]
    if acknowledged_at:
        timeline.append({"at": acknowledged_at, "kind": "acknowledged", "by": "U024BE7LH", "text": None})
    if resolved_at:
        timeline.append({"at": resolved_at, "kind": "resolved", "by": "alerts", "text": None})
    return {
        "id": incident_id,
        "priority": priority,
        "severity": SEVERITY[priority],
        "state": state,
        "title": title or f"{SEVERITY[priority]} incident {incident_id}",
        "group_key": f"rule=x/service=routing/{incident_id}",
        "labels": {"service": "routing", "region": region},
        "rules": ["error-rate-high"],
        "runbook": None,
        "opened_at": opened_at,
        "acknowledged_at": acknowledged_at,
        "resolved_at": resolved_at,
        "acknowledged_by": "U024BE7LH" if acknowledged_at else None,
        "resolved_by": "alerts" if resolved_at else None,
        "respond_by": opened_at + respond,
        "resolve_by": opened_at + resolve,
        "escalation_level": 0,
        "timeline": timeline,
        "review": None,
        "updated_at": resolved_at or acknowledged_at or opened_at,
    }
