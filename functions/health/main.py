"""The health capability's HTTP entry point ``score_health``: the customer admin API
(``/v1/customers...``), the daily run (``POST /v1/health/run``), the scores
(``/v1/health/customers...``, ``/v1/health/personas``) and ``/health``."""

from __future__ import annotations

import time
from typing import Any

import flask

from functions.health import registry
from functions.health.models import CustomerIn, EventBatch
from functions.health.settings import get_health_settings
from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.http import Api, Problem, json_response, read_json
from shared.logging import get_logger

api = Api("health")
log = get_logger("health")

CATEGORIES = ("healthy", "at_risk", "churn_risk")


def handle(request: flask.Request) -> flask.Response:
    return api(request)


@api.route("/health")
def health(_request: flask.Request) -> flask.Response:
    """Liveness with a real Firestore read: the capability is useless without its store."""
    started = time.perf_counter()
    try:
        from shared.customer_keys import CUSTOMERS_COLLECTION
        from shared.firestore import get_firestore

        get_firestore().collection(CUSTOMERS_COLLECTION).limit(1).get(timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means the store is unreachable
        body = {
            "status": "degraded",
            "service": "health",
            "checks": {"firestore": {"ok": False, "error": type(exc).__name__}},
        }
        return json_response(body, status=503)
    latency = round((time.perf_counter() - started) * 1000, 2)
    return json_response(
        {"status": "ok", "service": "health", "checks": {"firestore": {"ok": True, "latency_ms": latency}}}
    )


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
        log.info("customer created", extra={"customer_id": customer.id})
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
def issue_key(_request: flask.Request, customer_id: str) -> flask.Response:
    _existing_customer(customer_id)
    issued = registry.issue_key(customer_id)
    return json_response(issued, status=201, headers={"Cache-Control": "no-store"})


@api.route("/v1/customers/<customer_id>/keys", methods=["GET"])
def list_keys(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    _existing_customer(customer_id)
    return {"keys": [key.model_dump(mode="json") for key in registry.list_keys(customer_id)]}


@api.route("/v1/customers/<customer_id>/keys/<key_id>", methods=["DELETE"])
def revoke_key(_request: flask.Request, customer_id: str, key_id: str) -> dict[str, Any]:
    _existing_customer(customer_id)
    view = registry.revoke_key(customer_id, key_id)
    if view is None:
        raise Problem(404, f"Customer {customer_id!r} has no key {key_id!r}.")
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
