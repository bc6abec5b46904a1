"""GET /v1/alerts a page at a time: its query, its answer, and the page read from Firestore.

Alert states are kept 35 days after they last went quiet (one per rule and label set), so a
label that churns leaves thousands of them: a listing reads the page it answers, by rule then
fingerprint (the document id), and a ``next`` to pass as ``after`` for the page after."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from functions.alerts.state import AlertState
from shared.ids import DocumentId
from shared.paging import after_listed


class AlertList(BaseModel):
    alerts: list[AlertState]
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null on the last (a full page may be followed "
        "by an empty one)",
    )


class AlertsQuery(BaseModel):
    state: Literal["inactive", "pending", "firing", "resolved"] | None = Field(
        default=None, description="only alerts in this state"
    )
    rule: str | None = Field(default=None, max_length=255, description="only this rule's alerts")
    limit: int = Field(default=100, ge=1, le=500, description="at most this many, by rule and fingerprint")
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=128, description="the `next` of the page before: alerts after this fingerprint"
        )
        | None
    ) = None


def page(query: AlertsQuery) -> list[AlertState]:
    """The page ``query`` asks for, by rule then fingerprint: its states and no more read (an
    index on state then rule in ``topology.yaml``; an equality-filtered field is not ordered on)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from functions.alerts.state_store import STATES_COLLECTION
    from shared.firestore import get_firestore

    states = get_firestore().collection(STATES_COLLECTION)
    found: Any = states
    if query.rule is not None:
        found = found.where(filter=FieldFilter("rule", "==", query.rule))
    if query.state is not None:
        found = found.where(filter=FieldFilter("state", "==", query.state))
    if query.rule is None:
        found = found.order_by("rule")
    found = found.order_by("__name__")
    if query.after is not None:

        def listed(fields: dict[str, Any]) -> bool:
            rule = fields.get("rule")
            return (
                isinstance(rule, str)
                and query.rule in (None, rule)
                and query.state in (None, fields.get("state"))
            )

        ref = states.document(query.after)
        found = after_listed(found, ref, listed, "alert these filters list", ["rule", "state"])
    return [AlertState.model_validate(doc.to_dict()) for doc in found.limit(query.limit).stream()]
