"""The scores on the deployed stores, as the API runs and reads them: the daily run over the
stored usage and Firestore, one customer's latest score with its history, and the weekly persona
satisfaction with the drift state. No HTTP: ``None`` says a customer has not been scored yet, an
``AsOfRefused`` that a day cannot be scored. Each imports the run and the stores when called:
``/health`` and the customer admin API need neither."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from functions.health.config import configured
from functions.health.models import Customer
from functions.health.settings import get_health_settings
from functions.health.views import health_view

if TYPE_CHECKING:
    from functions.health.run import RunSummary

MAX_AS_OF_DAYS_BACK = 400


class AsOfRefused(ValueError):
    """A day the run cannot score: why, and the field errors saying what is allowed (or None)."""

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.errors = errors


def day_to_score(as_of: date | None, today: date) -> date:
    """The day a run scores up to (``as_of``, default today): from MAX_AS_OF_DAYS_BACK days back
    to tomorrow, else ``AsOfRefused``."""
    as_of = as_of or today
    if as_of > today + timedelta(days=1):
        raise AsOfRefused(f"as_of {as_of} is in the future; the run scores days that have ended.")
    if as_of < today - timedelta(days=MAX_AS_OF_DAYS_BACK):
        # Found by the contract test: a date centuries back asked the metric store for times it
        # refuses (a 500). Nothing older than this is kept to score from.
        raise AsOfRefused(
            f"as_of {as_of} is more than {MAX_AS_OF_DAYS_BACK} days ago; nothing that old is kept "
            "to score from.",
            errors=[
                {
                    "field": "as_of",
                    "message": "too far back",
                    "allowed": f"{MAX_AS_OF_DAYS_BACK} days back to tomorrow",
                }
            ],
        )
    return as_of


def run_stored(as_of: date) -> RunSummary:
    """Score every customer as of the start of ``as_of``; the actions' notices are published
    unless ION_HEALTH_PUBLISH_ACTIONS is false."""
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
