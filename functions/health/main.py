"""The health capability's HTTP entry point ``score_health``: the customer admin API
(``/v1/customers...``), the daily run (``POST /v1/health/run``), the scores
(``/v1/health/customers...``, ``/v1/health/personas``) and ``/health``."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Literal

import flask

# Every route of this function reads or writes Firestore, so deferring the client's import buys
# no cold start: it is paid with the module, on the first request of any kind (the scheduler's or
# a liveness probe's), instead of inside the first health check's time budget.
import google.cloud.firestore  # noqa: F401
from pydantic import BaseModel, ConfigDict, Field

from functions.health import registry
from functions.health.models import (
    Customer,
    CustomerIn,
    CustomerPatch,
    CustomerRef,
    EventBatch,
    KeyIssued,
    KeyView,
)
from functions.health.settings import get_health_settings
from shared.audit import audit
from shared.http import HEALTH_ROUTE, Api, Problem, Reply, json_response
from shared.ids import DocumentId
from shared.logging import get_logger

api = Api("health")
log = get_logger("health")

CATEGORIES = ("healthy", "at_risk", "churn_risk", "usage_unknown")
Category = Literal["healthy", "at_risk", "churn_risk", "usage_unknown"]
MAX_AS_OF_DAYS_BACK = 400


# The contract: path variables, query strings and answers ------------------------------------------


class CustomerPath(BaseModel):
    customer_id: CustomerRef


class KeyPath(BaseModel):
    customer_id: CustomerRef
    key_id: DocumentId(max_length=64, description="a key id, as issued (12 hex digits)")  # type: ignore[valid-type]


class PageQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000, description="customers per page, 1 to 1000")
    category: Category | None = Field(default=None, description="only customers of this health category")
    after: CustomerRef | None = Field(  # type: ignore[valid-type]
        default=None, description="the `next` of the previous page: customers after this id"
    )


class ScoredQuery(PageQuery):
    """The health list: filterable and sortable for a success manager's book of business."""

    plan: str | None = Field(default=None, max_length=50, description="only customers on this plan")
    segment: str | None = Field(default=None, max_length=50, description="only customers of this segment")
    csm: str | None = Field(
        default=None, max_length=254, description="only customers of this success manager (email or name)"
    )
    min_score: float | None = Field(default=None, ge=0, le=100, description="score at least this")
    max_score: float | None = Field(default=None, ge=0, le=100, description="score at most this")
    sort: Literal["id", "score", "-score"] = Field(
        default="id", description="id, score (lowest first) or -score (highest first); ties by id"
    )


class DaysQuery(BaseModel):
    days: int = Field(default=30, ge=1, le=400, description="days of history, 1 to 400")


class WeeksQuery(BaseModel):
    weeks: int = Field(default=4, ge=1, le=52, description="weeks back, 1 to 52")


class RunQuery(BaseModel):
    as_of: date | None = Field(
        default=None, description="score as of the start of this day (default today, UTC), YYYY-MM-DD"
    )


class CustomerPage(BaseModel):
    customers: list[Customer]
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class ScoredCustomer(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    plan: str | None
    segment: str | None
    status: str = Field(default="active", description="active, or inactive (deactivated: not scored)")
    score: float | None
    category: str | None
    as_of: str | None


class ScoredPage(BaseModel):
    customers: list[ScoredCustomer]
    next: str | None


class CustomerHealth(ScoredCustomer):
    components: dict[str, Any] = Field(description="per signal: score, weight, inputs, headline")
    missing: list[Any]
    previous: Any
    movers: list[Any]
    actions: dict[str, Any] = Field(description="per action: its episode state")
    history: list[dict[str, Any]] = Field(description="daily as_of, score, category, actions_fired")


class PersonaHealth(BaseModel):
    expected_mix: dict[str, Any]
    weeks: list[dict[str, Any]]
    drift_state: dict[str, Any]


class KeyList(BaseModel):
    keys: list[KeyView]


class EventOutcome(BaseModel):
    event_id: str
    outcome: Literal["created", "unchanged", "conflict"]


class ImportResult(BaseModel):
    customer_id: str
    created: int
    unchanged: int
    conflict: int
    events: list[EventOutcome]
    detail: str | None = None


_CUSTOMER_LINKS = {
    "get_customer": {"customer_id": "$response.body#/id"},
    "list_keys": {"customer_id": "$response.body#/id"},
    "issue_key": {"customer_id": "$response.body#/id"},
}


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
    links={201: _CUSTOMER_LINKS, 200: _CUSTOMER_LINKS},
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
    limit = query.limit
    customers = registry.list_customers(category=query.category, limit=limit, after=query.after)
    return {
        "customers": [c.model_dump(mode="json") for c in customers],
        "next": customers[-1].id if len(customers) == limit else None,
    }


@api.route("/v1/customers/<customer_id>", methods=["GET"], params=CustomerPath, response=Customer)
def get_customer(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    return _existing_customer(customer_id).model_dump(mode="json")


# Fields whose old and new values go into the audit entry; the contact (a person) is named only.
_AUDITED_VALUES = ("plan", "segment", "created_at", "first_value_at")


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
    changed = [name for name in body.model_fields_set if getattr(before, name) != getattr(after, name)]
    if changed:
        audit(
            log,
            "customer.update",
            request.headers,
            "customer updated",
            customer_id=customer_id,
            changed=sorted(changed),
            values={
                name: {"from": _plain(getattr(before, name)), "to": _plain(getattr(after, name))}
                for name in changed
                if name in _AUDITED_VALUES
            },
        )
    return after.model_dump(mode="json")


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class StatusChange(BaseModel):
    customer: Customer
    changed: bool = Field(description="false: it already had this status (nothing done)")
    keys_revoked: list[str] = Field(default=[], description="key ids revoked by this deactivation")


@api.route(
    "/v1/customers/<customer_id>/deactivate",
    methods=["POST"],
    params=CustomerPath,
    response=StatusChange,
)
def deactivate_customer(request: flask.Request, customer_id: str) -> dict[str, Any]:
    """Stop scoring the customer and firing its actions, and revoke every key it holds
    (idempotent: a repeat revokes what is left and changes nothing else)."""
    outcome = registry.set_status(customer_id, "inactive")
    if outcome is None:
        raise Problem(404, f"No customer {customer_id!r}.")
    customer, changed = outcome
    # Revoked after the status is stored: a retry of a deactivation that failed half-way
    # revokes what is left.
    revoked = registry.revoke_all_keys(customer_id)
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
    "/v1/customers/<customer_id>/reactivate",
    methods=["POST"],
    params=CustomerPath,
    response=StatusChange,
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


class Erasure(BaseModel):
    customer_id: str
    existed: bool = Field(description="false: nothing of the customer's own was left (a repeat)")
    removed: dict[str, int] = Field(description="per collection, documents deleted or entries removed now")


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
    links={
        201: {
            "revoke_key": {"customer_id": "$response.body#/customer_id", "key_id": "$response.body#/key_id"}
        }
    },
)
def issue_key(request: flask.Request, customer_id: str) -> flask.Response:
    if _existing_customer(customer_id).status != "active":
        raise Problem(409, f"Customer {customer_id!r} is deactivated; reactivate it before issuing keys.")
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


@api.route("/v1/customers/<customer_id>/keys", methods=["GET"], params=CustomerPath, response=KeyList)
def list_keys(_request: flask.Request, customer_id: str) -> dict[str, Any]:
    _existing_customer(customer_id)
    return {"keys": [key.model_dump(mode="json") for key in registry.list_keys(customer_id)]}


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
    batch = body
    most = get_health_settings().max_events_per_request
    if len(batch.events) > most:
        raise Problem(413, f"{len(batch.events)} events in one request; send at most {most} per request.")
    clashing = registry.repeated_with_other_content(batch.events)
    if clashing:
        raise Problem(
            422,
            f"Event ids repeated in this request with other content: {', '.join(clashing[:20])}; "
            "nothing was stored. Send each event id once (a new fact needs a new event id).",
            errors=[
                {"field": "events", "message": f"event_id {i} repeated with other content"}
                for i in clashing[:20]
            ],
        )
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


@api.route("/v1/health/run", methods=["POST"], query=RunQuery, response="functions.health.run:RunSummary")
def run(_request: flask.Request, query: RunQuery) -> dict[str, Any]:
    """Score every customer as of the start of ``?as_of=`` (default: today, UTC), i.e. on the
    data of the days before it. What the daily schedule calls; safe to repeat."""
    from functions.health.run import run_health
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import StoredUsage
    from shared.clock import utcnow
    from shared.notices import publish_notice

    today = utcnow().date()
    as_of = query.as_of or today
    if as_of > today + timedelta(days=1):
        raise Problem(422, f"as_of {as_of} is in the future; the run scores days that have ended.")
    if as_of < today - timedelta(days=MAX_AS_OF_DAYS_BACK):
        # Found by the contract test: a date centuries back asked the metric store for times it
        # refuses (a 500). Nothing older than this is kept to score from.
        raise Problem(
            422,
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
    publish = publish_notice if get_health_settings().publish_actions else None
    summary = run_health(
        as_of,
        cfg=_config(),
        usage_source=StoredUsage(),
        store=FirestoreHealthStore(),
        publish=publish,
        public_url=get_health_settings().public_url,
    )
    return summary.model_dump(mode="json")


def _view(customer: Any, state: dict[str, Any]) -> dict[str, Any]:
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


@api.route("/v1/health/customers", methods=["GET"], query=ScoredQuery, response=ScoredPage)
def scored_customers(_request: flask.Request, query: ScoredQuery) -> dict[str, Any]:
    """Customers with their latest score, a page at a time; filtered by category, plan, segment,
    success manager and score range, sorted by id or score."""
    limit = query.limit
    narrowed = {"plan", "segment", "csm", "min_score", "max_score"} & query.model_fields_set
    if narrowed or query.sort != "id":
        try:
            customers = registry.find_customers(
                category=query.category,
                plan=query.plan,
                segment=query.segment,
                csm=query.csm,
                min_score=query.min_score,
                max_score=query.max_score,
                sort=query.sort,
                limit=limit,
                after=query.after,
            )
        except ValueError as exc:
            raise Problem(422, str(exc)) from None
    else:
        customers = registry.list_customers(category=query.category, limit=limit, after=query.after)
    return {
        "customers": [_view(c, c.health.model_dump() if c.health else {}) for c in customers],
        "next": customers[-1].id if len(customers) == limit else None,
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
    from functions.health.store import FirestoreHealthStore

    customer = _existing_customer(customer_id)
    store = FirestoreHealthStore()
    state = store.get_doc("customers", customer.id) or {}
    health = state.get("health") or {}
    if not health.get("as_of"):
        raise Problem(
            404, f"Customer {customer_id!r} has not been scored yet; POST /v1/health/run scores now."
        )
    days = query.days
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


@api.route(
    "/v1/health/personas",
    methods=["GET"],
    query=WeeksQuery,
    responses={200: Reply(PersonaHealth, description="Weekly satisfaction per persona and the drift state.")},
)
def personas(_request: flask.Request, query: WeeksQuery) -> dict[str, Any]:
    """Weekly persona satisfaction and drift tests for the last ``?weeks=`` (default 4) weeks."""
    from functions.health.run import last_complete_week
    from functions.health.store import DRIFT_COLLECTION, PERSONAS_COLLECTION, FirestoreHealthStore
    from shared.clock import utcnow

    latest = last_complete_week(utcnow().date())
    ids = [(latest - timedelta(weeks=i)).isoformat() for i in range(query.weeks)]
    store = FirestoreHealthStore()
    found = store.get_docs(PERSONAS_COLLECTION, ids)
    drift = store.get_docs(DRIFT_COLLECTION, ["expected", "baseline"])
    return {
        "expected_mix": _config().personas.expected_mix,
        "weeks": [found[i] for i in ids if i in found],
        "drift_state": drift,
    }
