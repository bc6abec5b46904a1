"""The health capability's HTTP entry point ``score_health``: the customer admin API
(``/v1/customers...``), the daily run (``POST /v1/health/run``), the scores
(``/v1/health/customers...``, ``/v1/health/personas``) and ``/health``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import flask

# Every route of this function reads or writes Firestore, so deferring the client's import buys
# no cold start: it is paid with the module, on the first request of any kind (the scheduler's or
# a liveness probe's), instead of inside the first health check's time budget.
import google.cloud.firestore  # noqa: F401

from functions.health import admin, registry
from functions.health.api_models import (
    CUSTOMER_LINKS,
    KEY_LINKS,
    LIST_KEYS,
    CustomerHealth,
    CustomerPage,
    CustomerPath,
    DaysQuery,
    Erasure,
    ImportResult,
    KeyPageQuery,
    KeyPath,
    PageQuery,
    PersonaHealth,
    RunQuery,
    ScoredPage,
    ScoredQuery,
    StatusChange,
    WeeksQuery,
)
from functions.health.models import Customer, CustomerIn, CustomerPatch, EventBatch, KeyIssued, KeyView
from functions.health.views import changes, next_after, scored_view
from shared.audit import audit
from shared.http import HEALTH_ROUTE, Api, Problem, Reply, bad_cursor, json_response
from shared.logging import get_logger
from shared.paging import UnknownCursor

api = Api("health")
log = get_logger("health")


def handle(request: flask.Request) -> flask.Response:
    return api(request)


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("health", lambda: "alerts")


@api.route("/health", **HEALTH_ROUTE)
def health(_request: flask.Request) -> flask.Response:
    """Firestore and the alerts topic (actions are notices) probed, cached a few seconds."""
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status=status_code(report))


# Customers ---------------------------------------------------------------------------------------


def _existing_customer(customer_id: str) -> Any:
    """The customer of a path's (already validated) id, or 404."""
    customer = registry.get_customer(customer_id)
    if customer is None:
        raise Problem(404, f"No customer {customer_id!r}; create it with POST /v1/customers.")
    return customer


@api.route(
    "/v1/customers",
    methods=["POST"],
    body=CustomerIn,
    responses={
        201: Reply(Customer, description="Created.", headers=("Location",)),
        200: Reply(Customer, description="Existed with the same details."),
    },
    problems=(409,),
    links={201: CUSTOMER_LINKS, 200: CUSTOMER_LINKS},
)
def create_customer(request: flask.Request, body: CustomerIn) -> flask.Response:
    """Create a customer (idempotent: the same details again answer 200)."""
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


@api.route("/v1/customers", methods=["GET"], query=PageQuery, response=CustomerPage)
def list_customers(_request: flask.Request, query: PageQuery) -> dict[str, Any]:
    """Customers in id order, a page at a time."""
    from functions.health.listing import list_customers as listed

    limit = query.limit
    customers = listed(category=query.category, status=query.status, limit=limit, after=query.after)
    return {
        "customers": [c.model_dump(mode="json") for c in customers],
        "next": next_after(customers, limit),
    }


@api.route("/v1/customers/<customer_id>", methods=["GET"], params=CustomerPath, response=Customer)
def get_customer(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    return _existing_customer(customer_id).model_dump(mode="json")


@api.route(
    "/v1/customers/<customer_id>",
    methods=["PATCH"],
    params=CustomerPath,
    body=CustomerPatch,
    response=Customer,
)
def update_customer(request: flask.Request, customer_id: str, body: CustomerPatch) -> dict[str, Any]:
    """Change a customer's name, plan, segment, contact (its success manager), created_at or
    first_value_at; fields left out are kept, ``null`` clears one."""
    outcome = registry.update_customer(customer_id, body)
    if outcome is None:
        raise Problem(404, f"No customer {customer_id!r}; create it with POST /v1/customers.")
    before, after = outcome
    changed, values = changes(before, after, body.model_fields_set)
    if changed:
        audit(
            log,
            "customer.update",
            request.headers,
            "customer updated",
            customer_id=customer_id,
            changed=sorted(changed),
            values=values,
        )
    return after.model_dump(mode="json")


@api.route(
    "/v1/customers/<customer_id>/deactivate", methods=["POST"], params=CustomerPath, response=StatusChange
)
def deactivate_customer(request: flask.Request, customer_id: str) -> dict[str, Any]:
    """Stop scoring the customer and firing its actions, and revoke every key it holds
    (idempotent: a repeat revokes what is left and changes nothing else)."""
    outcome = admin.deactivate(customer_id)
    if outcome is None:
        raise Problem(404, f"No customer {customer_id!r}.")
    customer, changed, revoked = outcome
    if changed or revoked:
        audit(
            log,
            "customer.deactivate",
            request.headers,
            "customer deactivated",
            customer_id=customer_id,
            keys_revoked=revoked,
        )
    return {"customer": customer.model_dump(mode="json"), "changed": changed, "keys_revoked": revoked}


@api.route(
    "/v1/customers/<customer_id>/reactivate", methods=["POST"], params=CustomerPath, response=StatusChange
)
def reactivate_customer(request: flask.Request, customer_id: str) -> dict[str, Any]:
    """Score the customer and fire its actions again (its revoked keys stay revoked: issue new ones)."""
    outcome = registry.set_status(customer_id, "active")
    if outcome is None:
        raise Problem(404, f"No customer {customer_id!r}.")
    customer, changed = outcome
    if changed:
        audit(log, "customer.reactivate", request.headers, "customer reactivated", customer_id=customer_id)
    return {"customer": customer.model_dump(mode="json"), "changed": changed, "keys_revoked": []}


@api.route("/v1/customers/<customer_id>", methods=["DELETE"], params=CustomerPath, response=Erasure)
def erase_customer(request: flask.Request, customer_id: str) -> dict[str, Any]:
    """Erase the customer's data everywhere and revoke its keys (admin). Idempotent: a retry
    finishes an erasure that failed half-way; a repeat finds nothing left."""
    from functions.health.erasure import erase_customer as erase

    existed, removed = erase(customer_id)
    # What was erased is not repeated here: the id and the counts, never a name or a contact.
    audit(
        log,
        "customer.erase",
        request.headers,
        "customer erased",
        customer_id=customer_id,
        existed=existed,
        removed={name: count for name, count in removed.items() if count},
    )
    return {"customer_id": customer_id, "existed": existed, "removed": removed}


@api.route(
    "/v1/customers/<customer_id>/keys",
    methods=["POST"],
    params=CustomerPath,
    responses={201: KeyIssued},
    problems=(409,),
    links=KEY_LINKS,
)
def issue_key(request: flask.Request, customer_id: str) -> flask.Response:
    try:
        issued = admin.issue_key(_existing_customer(customer_id))
    except admin.Deactivated as refused:
        raise Problem(409, str(refused)) from None
    ids = {"customer_id": customer_id, "key_id": issued.key_id}  # the key's id, never its value
    audit(log, "customer_key.issue", request.headers, "customer key issued", **ids)
    return json_response(issued, status=201, headers={"Cache-Control": "no-store"})


@api.route("/v1/customers/<customer_id>/keys", **LIST_KEYS)
def list_keys(_request: flask.Request, customer_id: str, query: KeyPageQuery) -> dict[str, Any]:
    """The customer's keys, revoked ones too, oldest first, a page at a time."""
    _existing_customer(customer_id)
    try:
        keys, following = registry.key_page(customer_id, query.limit, query.after)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    return {"keys": [key.model_dump(mode="json") for key in keys], "next": following}


@api.route("/v1/customers/<customer_id>/keys/<key_id>", methods=["DELETE"], params=KeyPath, response=KeyView)
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


@api.route(
    "/v1/customers/<customer_id>/events",
    methods=["POST"],
    params=CustomerPath,
    body=EventBatch,
    responses={
        201: Reply(ImportResult, description="Some events were new."),
        200: Reply(ImportResult, description="Every event was imported before, unchanged."),
        409: Reply(ImportResult, description="Some event ids were imported before with other content."),
    },
)
def import_events(_request: flask.Request, customer_id: str, body: EventBatch) -> flask.Response:
    _existing_customer(customer_id)
    try:
        result = admin.import_batch(customer_id, body.events)
    except admin.TooManyEvents as exc:
        raise Problem(413, str(exc)) from None
    except admin.RepeatedEvents as exc:
        raise Problem(422, str(exc), errors=exc.errors) from None
    return json_response(result, status=409 if result["conflict"] else 201 if result["created"] else 200)


# Scores ------------------------------------------------------------------------------------------


@api.route("/v1/health/run", methods=["POST"], query=RunQuery, response="functions.health.run:RunSummary")
def run(_request: flask.Request, query: RunQuery) -> dict[str, Any]:
    """Score every customer as of the start of ``?as_of=`` (default: today, UTC), i.e. on the
    data of the days before it. What the daily schedule calls; safe to repeat."""
    from functions.health.scores import AsOfRefused, day_to_score, run_stored
    from shared.clock import utcnow

    try:
        as_of = day_to_score(query.as_of, utcnow().date())
    except AsOfRefused as exc:
        raise Problem(422, str(exc), errors=exc.errors) from None
    return run_stored(as_of).model_dump(mode="json")


@api.route("/v1/health/customers", methods=["GET"], query=ScoredQuery, response=ScoredPage)
def scored_customers(_request: flask.Request, query: ScoredQuery) -> dict[str, Any]:
    """Customers with their latest score, a page at a time; active ones unless ``?status=`` says
    otherwise; filtered by category, plan, segment, success manager and score range, sorted by id
    or score. A page reads a bounded number of customers (a short page may have a ``next``)."""
    from functions.health.listing import find_customers

    try:
        # The query's fields are find_customers' filters, sort and page, name for name.
        page = find_customers(**query.model_dump())
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return {
        "customers": [scored_view(c, c.health.model_dump() if c.health else {}) for c in page.customers],
        "next": page.next,
    }


@api.route(
    "/v1/health/customers/<customer_id>",
    methods=["GET"],
    params=CustomerPath,
    query=DaysQuery,
    responses={
        200: Reply(CustomerHealth, description="The score, its components, movers, history and actions.")
    },
)
def customer_health(_request: flask.Request, customer_id: str, query: DaysQuery) -> dict[str, Any]:
    """Score, components (score, weight, inputs), missing signals, what moved it, history and
    action states. 404 until the customer has been scored once."""
    from functions.health.scores import customer_scores

    customer = _existing_customer(customer_id)
    scores = customer_scores(customer, query.days)
    if scores is None:  # a run scores active customers only
        how = (
            "POST /v1/health/run scores now"
            if customer.status == "active"
            else f"it is deactivated: POST /v1/customers/{customer_id}/reactivate, then the run scores it"
        )
        raise Problem(404, f"Customer {customer_id!r} has not been scored yet; {how}.")
    return scores


@api.route(
    "/v1/health/personas",
    methods=["GET"],
    query=WeeksQuery,
    responses={200: Reply(PersonaHealth, description="Weekly satisfaction per persona and the drift state.")},
)
def personas(_request: flask.Request, query: WeeksQuery) -> dict[str, Any]:
    """Weekly persona satisfaction and drift tests for the last ``?weeks=`` (default 4) weeks."""
    from functions.health.scores import persona_health

    return persona_health(query.weeks)
