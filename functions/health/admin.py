"""The customer admin operations that take more than one registry call: deactivating (the status
stored, then every key revoked), issuing a key (to an active customer only, also when a
deactivation races it) and importing a batch of events (its limits checked before anything is
stored). No HTTP: ``TooManyEvents`` and ``RepeatedEvents`` say why a batch was refused (nothing
stored), ``Deactivated`` why a key was not, ``None`` that there is no such customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.health import customer_events, registry
from functions.health.models import Customer, Event, KeyIssued
from functions.health.settings import get_health_settings
from functions.health.views import import_result

# At most this many of the repeated event ids are named in a refusal.
NAMED_REPEATS = 20


class TooManyEvents(ValueError):
    pass


class Deactivated(ValueError):
    """The customer is deactivated: it gets no key."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"Customer {customer_id!r} is deactivated; reactivate it before issuing keys.")


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


def issue_key(customer: Customer) -> KeyIssued:
    """A new key for an active ``customer``, else ``Deactivated``. The status is read again once
    the key exists: a deactivation that landed in between revoked the keys before this one
    existed, so the key is revoked here (either this read sees the deactivation, or the
    deactivation's sweep, which follows its status write, sees the key)."""
    if customer.status != "active":
        raise Deactivated(customer.id)
    issued = registry.issue_key(customer.id)
    now = registry.get_customer(customer.id)
    if now is None or now.status != "active":
        registry.revoke_key(customer.id, issued.key_id)
        raise Deactivated(customer.id)
    return issued


def deactivate(customer_id: str) -> tuple[Customer, bool, list[str]] | None:
    """Deactivate: ``(customer, changed, key ids revoked now)``, None if there is no such customer."""
    outcome = registry.set_status(customer_id, "inactive")
    if outcome is None:
        return None
    customer, changed = outcome
    # Revoked after the status is stored: a retry of a deactivation that failed half-way
    # revokes what is left.
    return customer, changed, registry.revoke_all_keys(customer_id)
