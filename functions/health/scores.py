"""The scores on the deployed stores, as the API runs and reads them: the daily run over the
stored usage and Firestore, one customer's latest score with its history, and the weekly persona
satisfaction with the drift state. No HTTP: ``None`` says a customer has not been scored yet.
Each imports the run and the stores when called: ``/health`` and the customer admin API need
neither."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from functions.health.config import configured
from functions.health.models import Customer
from functions.health.settings import get_health_settings
from functions.health.views import health_view

if TYPE_CHECKING:
    from functions.health.run import RunSummary


def run_stored(as_of: date) -> RunSummary:
    """Score every customer as of the start of ``as_of``; notices published if PUBLISH_ACTIONS."""
    from functions.health.run import run_health
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import StoredUsage
    from shared.notices import publish_notice

    publish = publish_notice if get_health_settings().publish_actions else None
    return run_health(
        as_of,
        cfg=configured(),
        usage_source=StoredUsage(),
        store=FirestoreHealthStore(),
        publish=publish,
        public_url=get_health_settings().public_url,
    )


def customer_scores(customer: Customer, days: int) -> dict[str, Any] | None:
    """The customer's latest score with ``days`` days of history, or None before its first run."""
    from functions.health.store import FirestoreHealthStore

    store = FirestoreHealthStore()
    state = store.get_doc("customers", customer.id) or {}
    health = state.get("health") or {}
    if not health.get("as_of"):
        return None
    as_of = date.fromisoformat(health["as_of"])
    return health_view(customer, health, store.history(customer.id, as_of, days))


def persona_health(weeks: int) -> dict[str, Any]:
    """The expected persona mix, the last ``weeks`` complete weeks' satisfaction, the drift state."""
    from functions.health.run import last_complete_week
    from functions.health.store import DRIFT_COLLECTION, PERSONAS_COLLECTION, FirestoreHealthStore
    from shared.clock import utcnow

    latest = last_complete_week(utcnow().date())
    ids = [(latest - timedelta(weeks=i)).isoformat() for i in range(weeks)]
    store = FirestoreHealthStore()
    found = store.get_docs(PERSONAS_COLLECTION, ids)
    drift = store.get_docs(DRIFT_COLLECTION, ["expected", "baseline"])
    return {
        "expected_mix": configured().personas.expected_mix,
        "weeks": [found[i] for i in ids if i in found],
        "drift_state": drift,
    }
