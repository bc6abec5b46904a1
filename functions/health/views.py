"""What the health API answers, built from the stored customer and its scores (the shapes are the
answer models of ``api_models.py``), and what a customer update puts in its audit entry. No HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.health.models import Customer

# Fields whose old and new values go into the audit entry; the contact (a person) is named only.
AUDITED_VALUES = ("plan", "segment", "created_at", "first_value_at")


def plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def changes(before: Customer, after: Customer, fields: set[str]) -> tuple[list[str], dict[str, Any]]:
    """The fields an update changed, and the old and new values of those that may be audited."""
    changed = [name for name in fields if getattr(before, name) != getattr(after, name)]
    values = {
        name: {"from": plain(getattr(before, name)), "to": plain(getattr(after, name))}
        for name in changed
        if name in AUDITED_VALUES
    }
    return changed, values


def next_after(customers: Sequence[Customer], limit: int) -> str | None:
    """A page's ``next``: its last id when the page is full, null on the last page."""
    return customers[-1].id if len(customers) == limit else None


def scored_view(customer: Customer, state: dict[str, Any]) -> dict[str, Any]:
    """A customer with its latest score (``ScoredCustomer``)."""
    return {
        "id": customer.id,
        "name": customer.name,
        "plan": customer.plan,
        "segment": customer.segment,
        "status": customer.status,
        "score": state.get("score"),
        "category": state.get("category"),
        "as_of": state.get("as_of"),
        "csm": customer.contact.model_dump(exclude_none=True) if customer.contact else None,
    }


def health_view(customer: Customer, health: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """A customer's score with its components, movers, action states and history (``CustomerHealth``)."""
    return {
        **scored_view(customer, health),
        "components": health.get("components", {}),
        "missing": health.get("missing", []),
        "previous": health.get("previous"),
        "movers": health.get("movers", []),
        "actions": {
            name: {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in value.items()}
            for name, value in (health.get("actions") or {}).items()
        },
        "history": [
            {
                "as_of": h["as_of"],
                "score": h["score"],
                "category": h["category"],
                "actions_fired": h.get("actions_fired", []),
            }
            for h in history
        ],
    }


def import_result(customer_id: str, outcomes: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An event import's answer (``ImportResult``): the count of each outcome and each event's."""
    counts = {kind: sum(1 for _, o in outcomes if o == kind) for kind in ("created", "unchanged", "conflict")}
    result: dict[str, Any] = {
        "customer_id": customer_id,
        **counts,
        "events": [{"event_id": event_id, "outcome": outcome} for event_id, outcome in outcomes],
    }
    if counts["conflict"]:
        result["detail"] = (
            "Some event ids were imported before with other content; those were not changed "
            "(the others are stored). Use new event ids for new facts."
        )
    return result
