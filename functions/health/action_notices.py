"""The notice of one success action for one customer's success manager: the score, its category
and components, what moved it, the playbook and a link to the customer's page. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from functions.health.actions import PLAYBOOKS, Firing
from functions.health.models import Customer
from functions.health.scoring import ScoreResult
from shared.messages import AlertTransition
from shared.notices import notice_transition


def _components_text(result: ScoreResult) -> str:
    """One line per signal: score, weight and the input behind it, largest weight first."""
    lines = [
        f"{name} {c.score:g} (weight {c.weight:.2f})" + (f": {c.headline}" if c.headline else "")
        for name, c in sorted(result.components.items(), key=lambda item: -item[1].weight)
    ]
    lines += [f"{name}: no data" for name in result.missing]
    return "\n".join(lines)


def _previous_text(previous: dict[str, Any] | None) -> str:
    if not previous or previous.get("score") is None:
        return "first score"
    return f"{previous['score']:g} ({previous.get('category')}) as of {previous.get('as_of')}"


def action_notice(
    customer: Customer, firing: Firing, result: ScoreResult, now: datetime, customer_url: str | None = None
) -> AlertTransition:
    """The notice of ``firing`` for ``customer``; ``customer_url`` is its page in the health API."""
    customer_id = customer.id
    contact = customer.contact.model_dump() if customer.contact else None
    labels = {"customer": customer_id, "action": firing.action, "category": result.category}
    annotations = {
        "reason": firing.reason,
        "score": f"{result.score:g}",
        "category": result.category,
        "customer_name": customer.name,
        "title": firing.title,
        "components": _components_text(result),
        "previous": _previous_text(result.previous),
        "moved": "; ".join(m.reason for m in result.movers) or "nothing since the last score",
        "playbook": PLAYBOOKS.get(firing.action, ""),
    }
    if customer_url:
        annotations["customer_url"] = customer_url
    if contact:
        annotations.update({f"contact_{k}": str(v) for k, v in contact.items() if v})
    return notice_transition(
        notice_id=f"health/{customer_id}/{firing.action}/{now.date().isoformat()}",
        source="health",
        name=firing.action.replace("_", "-"),
        severity="low",
        summary=f"{customer.name}: {firing.title} ({firing.reason})",
        at=now,
        labels=labels,
        annotations=annotations,
        value=result.score,
        dashboard_url=customer_url,
    )
