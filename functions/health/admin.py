"""The customer admin operations that take more than one registry call: deactivating (the status
stored, then every key revoked) and importing a batch of events (its limits checked before
anything is stored). No HTTP: ``TooManyEvents`` and ``RepeatedEvents`` say why a batch was refused
(nothing stored), ``None`` that there is no such customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.health import customer_events, registry
from functions.health.models import Customer, Event
from functions.health.settings import get_health_settings
from functions.health.views import import_result

# At most this many of the repeated event ids are named in a refusal.
NAMED_REPEATS = 20


class TooManyEvents(ValueError):
    pass


class RepeatedEvents(ValueError):
    """Event ids a batch repeats with other content, as field errors."""

    def __init__(self, reason: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.errors = errors


def import_batch(customer_id: str, events: Sequence[Event]) -> dict[str, Any]:
    """Store each event of the batch once (``ImportResult``), or refuse the whole batch."""
    most = get_health_settings().max_events_per_request
    if len(events) > most:
        raise TooManyEvents(f"{len(events)} events in one request; send at most {most} per request.")
    clashing = customer_events.repeated_with_other_content(events)[:NAMED_REPEATS]
    if clashing:
        raise RepeatedEvents(
            f"Event ids repeated in this request with other content: {', '.join(clashing)}; "
            "nothing was stored. Send each event id once (a new fact needs a new event id).",
            errors=[
                {"field": "events", "message": f"event_id {i} repeated with other content"} for i in clashing
            ],
        )
    return import_result(customer_id, customer_events.import_events(customer_id, events))


def deactivate(customer_id: str) -> tuple[Customer, bool, list[str]] | None:
    """Deactivate: ``(customer, changed, key ids revoked now)``, None if there is no such customer."""
    outcome = registry.set_status(customer_id, "inactive")
    if outcome is None:
        return None
    customer, changed = outcome
    # Revoked after the status is stored: a retry of a deactivation that failed half-way
    # revokes what is left.
    return customer, changed, registry.revoke_all_keys(customer_id)
