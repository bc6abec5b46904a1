"""The health capability's HTTP entry point ``score_health``: the customer admin API
(``/v1/customers...``), the daily run (``POST /v1/health/run``), the scores
(``/v1/health/customers...``, ``/v1/health/personas``) and ``/health``."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import flask

# Every route of this function reads or writes Firestore, so deferring the client's import buys
# no cold start: it is paid with the module, on the first request of any kind (the scheduler's or
# a liveness probe's), instead of inside the first health check's time budget.
import google.cloud.firestore  # noqa: F401

from functions.health import registry
from functions.health.models import CustomerIn, EventBatch
from functions.health.settings import get_health_settings
from shared.audit import audit
from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.http import Api, Problem, json_response, read_json
from shared.logging import get_logger

api = Api("health")
log = get_logger("health")

CATEGORIES = ("healthy", "at_risk", "churn_risk", "usage_unknown")


def handle(request: flask.Request) -> flask.Response:
    return api(request)


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("health", lambda: "alerts")


@api.route("/health")
def health(_request: flask.Request) -> flask.Response:
    """Firestore and the alerts topic (actions are notices) probed, cached a few seconds."""
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status=status_code(report))


# Customers ---------------------------------------------------------------------------------------


def _checked_customer_id(customer_id: str) -> str:
    import re

    if not re.match(CUSTOMER_ID_PATTERN, customer_id):
        raise Problem(
            404,
            f"No customer {customer_id!r}: customer ids match {CUSTOMER_ID_PATTERN}.",
        )
    return customer_id


def _existing_customer(customer_id: str) -> Any:
    customer = registry.get_customer(_checked_customer_id(customer_id))
    if customer is None:
        raise Problem(404, f"No customer {customer_id!r}; create it with POST /v1/customers.")
    return customer


@api.route("/v1/customers", methods=["POST"])
def create_customer(request: flask.Request) -> flask.Response:
    body = read_json(request, CustomerIn)
    try:
        customer, created = registry.create_customer(body)
    except registry.Conflict as exc:
        raise Problem(409, f"{exc}; choose another id or send the same details.") from None
    if created:
        audit(log, "customer.create", request.headers, "customer created", customer_id=customer.id)
    return json_response(
        customer.model_dump(mode="json"),
        status=201 if created else 200,
        headers={"Location": f"/v1/customers/{customer.id}"},
    )


def _category_arg(request: flask.Request) -> str | None:
    category = request.args.get("category")
    if category is not None and category not in CATEGORIES:
        raise Problem(
            422,
            f"category {category!r} is not one of {', '.join(CATEGORIES)}.",
            errors=[{"field": "category", "message": "unknown category"}],
            allowed=list(CATEGORIES),
        )
    return category


def _limit_arg(request: flask.Request, default: int = 100, most: int = 1000) -> int:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise Problem(
            422,
            f"limit {raw!r} must be a whole number from 1 to {most}.",
            errors=[{"field": "limit", "message": f"1..{most}"}],
        )
    return int(raw)


@api.route("/v1/customers", methods=["GET"])
def list_customers(request: flask.Request) -> dict[str, Any]:
    limit = _limit_arg(request)
    customers = registry.list_customers(
        category=_category_arg(request), limit=limit, after=request.args.get("after")
    )
    return {
        "customers": [c.model_dump(mode="json") for c in customers],
        "next": customers[-1].id if len(customers) == limit else None,
    }


@api.route("/v1/customers/<customer_id>", methods=["GET"])
def get_customer(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    return _existing_customer(customer_id).model_dump(mode="json")


@api.route("/v1/customers/<customer_id>/keys", methods=["POST"])
def issue_key(request: flask.Request, customer_id: str) -> flask.Response:
    _existing_customer(customer_id)
    issued = registry.issue_key(customer_id)
    # The key's id, never its value.
    audit(
        log,
        "customer_key.issue",
        request.headers,
        "customer key issued",
        customer_id=customer_id,
        key_id=issued.key_id,
    )
    return json_response(issued, status=201, headers={"Cache-Control": "no-store"})


@api.route("/v1/customers/<customer_id>/keys", methods=["GET"])
def list_keys(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    _existing_customer(customer_id)
    return {"keys": [key.model_dump(mode="json") for key in registry.list_keys(customer_id)]}


@api.route("/v1/customers/<customer_id>/keys/<key_id>", methods=["DELETE"])
def revoke_key(request: flask.Request, customer_id: str, key_id: str) -> dict[str, Any]:
    _existing_customer(customer_id)
    view = registry.revoke_key(customer_id, key_id)
    if view is None:
        raise Problem(404, f"Customer {customer_id!r} has no key {key_id!r}.")
    audit(
        log,
        "customer_key.revoke",
        request.headers,
        "customer key revoked",
        customer_id=customer_id,
        key_id=key_id,
    )
    return view.model_dump(mode="json")


@api.route("/v1/customers/<customer_id>/events", methods=["POST"])
def import_events(request: flask.Request, customer_id: str) -> flask.Response:
    _existing_customer(customer_id)
    batch = read_json(request, EventBatch)
    most = get_health_settings().max_events_per_request
    if len(batch.events) > most:
        raise Problem(413, f"{len(batch.events)} events in one request; send at most {most} per request.")
    outcomes = registry.import_events(customer_id, batch.events)
    counts = {kind: sum(1 for _, o in outcomes if o == kind) for kind in ("created", "unchanged", "conflict")}
    body = {
        "customer_id": customer_id,
        **counts,
        "events": [{"event_id": event_id, "outcome": outcome} for event_id, outcome in outcomes],
    }
    if counts["conflict"]:
        body["detail"] = (
            "Some event ids were imported before with other content; those were not changed "
            "(the others are stored). Use new event ids for new facts."
        )
        return json_response(body, status=409)
    return json_response(body, status=201 if counts["created"] else 200)


# Scores ------------------------------------------------------------------------------------------


def _config():  # type: ignore[no-untyped-def]
    from functions.health.config import config_from

    return config_from(get_health_settings().config_file)


def _date_arg(request: flask.Request, name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Problem(
            422,
            f"{name} {raw!r} is not a date; use YYYY-MM-DD.",
            errors=[{"field": name, "message": "YYYY-MM-DD"}],
        ) from None


@api.route("/v1/health/run", methods=["POST"])
def run(request: flask.Request) -> dict[str, Any]:
    """Score every customer as of the start of ``?as_of=`` (default: today, UTC), i.e. on the
    data of the days before it. What the daily schedule calls; safe to repeat."""
    from functions.health.run import run_health
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import StoredUsage
    from shared.clock import utcnow
    from shared.notices import publish_notice

    today = utcnow().date()
    as_of = _date_arg(request, "as_of") or today
    if as_of > today + timedelta(days=1):
        raise Problem(422, f"as_of {as_of} is in the future; the run scores days that have ended.")
    publish = publish_notice if get_health_settings().publish_actions else None
    summary = run_health(
        as_of, cfg=_config(), usage_source=StoredUsage(), store=FirestoreHealthStore(), publish=publish
    )
    return summary.model_dump(mode="json")


def _view(customer: Any, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "plan": customer.plan,
        "segment": customer.segment,
        "score": state.get("score"),
        "category": state.get("category"),
        "as_of": state.get("as_of"),
    }


@api.route("/v1/health/customers", methods=["GET"])
def scored_customers(request: flask.Request) -> dict[str, Any]:
    limit = _limit_arg(request)
    customers = registry.list_customers(
        category=_category_arg(request), limit=limit, after=request.args.get("after")
    )
    return {
        "customers": [_view(c, c.health.model_dump() if c.health else {}) for c in customers],
        "next": customers[-1].id if len(customers) == limit else None,
    }


@api.route("/v1/health/customers/<customer_id>", methods=["GET"])
def customer_health(request: flask.Request, customer_id: str) -> dict[str, Any]:
    """Score, components (score, weight, inputs), missing signals, what moved it, history and
    action states. 404 until the customer has been scored once."""
    from functions.health.store import FirestoreHealthStore

    customer = _existing_customer(customer_id)
    store = FirestoreHealthStore()
    state = store.get_doc("customers", customer.id) or {}
    health = state.get("health") or {}
    if not health.get("as_of"):
        raise Problem(
            404, f"Customer {customer_id!r} has not been scored yet; POST /v1/health/run scores now."
        )
    days = _days_arg(request)
    as_of = date.fromisoformat(health["as_of"])
    history = store.history(customer.id, as_of, days)
    return {
        **_view(customer, health),
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


def _days_arg(request: flask.Request) -> int:
    raw = request.args.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 400:
        raise Problem(
            422,
            f"days {raw!r} must be a whole number from 1 to 400.",
            errors=[{"field": "days", "message": "1..400"}],
        )
    return int(raw)


@api.route("/v1/health/personas", methods=["GET"])
def personas(request: flask.Request) -> dict[str, Any]:
    """Weekly persona satisfaction and drift tests for the last ``?weeks=`` (default 4) weeks."""
    from functions.health.run import last_complete_week
    from functions.health.store import DRIFT_COLLECTION, PERSONAS_COLLECTION, FirestoreHealthStore
    from shared.clock import utcnow

    raw = request.args.get("weeks", "4")
    if not raw.isdigit() or not 1 <= int(raw) <= 52:
        raise Problem(
            422,
            f"weeks {raw!r} must be a whole number from 1 to 52.",
            errors=[{"field": "weeks", "message": "1..52"}],
        )
    latest = last_complete_week(utcnow().date())
    ids = [(latest - timedelta(weeks=i)).isoformat() for i in range(int(raw))]
    store = FirestoreHealthStore()
    found = store.get_docs(PERSONAS_COLLECTION, ids)
    drift = store.get_docs(DRIFT_COLLECTION, ["expected", "baseline"])
    return {
        "expected_mix": _config().personas.expected_mix,
        "weeks": [found[i] for i in ids if i in found],
        "drift_state": drift,
    }
