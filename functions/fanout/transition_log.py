"""The transitions fan-out received, listed by the time it received them: what a capped digest or
a storm's "and N more" leaves out, page by page (``GET /v1/transitions``). Knows nothing of HTTP.

Read from ``fanout_transitions`` (kept ``KEEP``, 30 days): a range of ``received_at``, optionally
one severity (an equality filter beside the range: a composite index, declared in
``topology.yaml``), oldest first, ties by document id; a page reads ``limit`` + 1 documents (the
one after it says whether there is a next page) and the cursor's document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from functions.fanout.records import TRANSITIONS, collection, field_filter
from shared.messages import AlertTransition, Severity
from shared.paging import after_listed


class LoggedTransition(BaseModel):
    """A transition as fan-out received it and what it did with it."""

    transition_id: str
    received_at: datetime
    rule: str
    severity: Severity
    state: str
    fingerprint: str
    labels: dict[str, str]
    summary: str
    value: float | None
    evaluated_at: datetime
    outcome: str = Field(description="pending, notified, muted, superseded, unannounced, ...")
    reason: str | None = Field(default=None, description="why it was muted, when it was")
    notification_id: str | None = None


class TransitionPage(BaseModel):
    transitions: list[LoggedTransition]
    next: str | None = Field(
        default=None, description="the last one's document id: pass it as `after` for the next page"
    )


def logged(raw: dict[str, Any]) -> LoggedTransition:
    transition = AlertTransition.model_validate(raw["transition"])
    return LoggedTransition(
        transition_id=transition.transition_id,
        received_at=raw["received_at"],
        rule=transition.rule,
        severity=transition.severity,
        state=transition.state,
        fingerprint=transition.fingerprint,
        labels=transition.labels,
        summary=transition.annotations.get("summary") or transition.rule,
        value=transition.value,
        evaluated_at=transition.evaluated_at,
        outcome=raw.get("outcome") or "",
        reason=raw.get("reason"),
        notification_id=raw.get("notification_id"),
    )


def page(
    since: datetime, until: datetime, severity: Severity | None, limit: int, after: str | None
) -> TransitionPage:
    """Transitions received in ``[since, until)``, oldest first, ``limit`` a page after ``after``."""
    query = (
        collection(TRANSITIONS)
        .where(filter=field_filter("received_at", ">=", since))
        .where(filter=field_filter("received_at", "<", until))
    )
    if severity is not None:
        query = query.where(filter=field_filter("severity", "==", severity))
    query = query.order_by("received_at").order_by("__name__")
    if after is not None:

        def listed(fields: dict[str, Any]) -> bool:
            received = fields.get("received_at")
            return isinstance(received, datetime) and since <= received < until

        ref = collection(TRANSITIONS).document(after)
        query = after_listed(query, ref, listed, "transition received in this window")
    snapshots = list(query.limit(limit + 1).stream())
    page = [logged(s.to_dict() or {}) for s in snapshots[:limit]]
    return TransitionPage(transitions=page, next=snapshots[limit - 1].id if len(snapshots) > limit else None)
