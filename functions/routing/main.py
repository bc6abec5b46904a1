"""HTTP handlers of the routing function (entry point ``route``): parse, call the routing
service, answer. API keys and the rate limit are checked before the API; every request is measured.
"""

from __future__ import annotations

import time
from typing import Any

import flask
import orjson
from pydantic import BaseModel, Field, ValidationError

from functions.routing.auth import AccessDenied, RateLimited, TooManyItems
from functions.routing.auth_failures import client_address
from functions.routing.customer_keys import KeyStoreUnavailable
from functions.routing.engine import INTENTS, PACES, PERSONAS, TONES, persona_profiles
from functions.routing.feedback_service import FeedbackStoreUnavailable, UnknownRequestId
from functions.routing.models import (
    BulkRequest,
    FeedbackRequest,
    FeedbackResponse,
    RecommendRequest,
    RouteRequest,
    RouteResponse,
    V1RouteRequest,
)
from functions.routing.service import KEY_PARTS, RejectedKey, RoutingService, get_service, item_error
from shared.http import (
    HEALTH_ROUTE,
    Api,
    Problem,
    ReadyResponse,
    Reply,
    body_read_so_far,
    bound_body,
    drain_unread_body,
    set_headers,
    validation_errors,
)
from shared.http import json_response as shared_json_response
from shared.logging import get_logger

# With ION_API_KEYS set, every route but /health needs X-API-Key (401) and is rate limited (429);
# 503 when the key store cannot be read.
# Where ``handle`` leaves the customer a request's key belongs to, for the routes.
CUSTOMER_ENVIRON = "ion.customer_id"
api = Api(
    "routing",
    problems=(401, 429, 503),
    security={"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    role="public",  # public (allUsers): customers' API keys, not roles, say who may call
)
log = get_logger("routing")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class V1RouteAnswer(BaseModel):
    """``POST /v1/route``'s original shape; ``metadata`` carries the v2 answer's fields."""

    content: str
    persona_used: str
    resonance_key: str
    confidence: float
    metadata: dict[str, Any]


class BulkItem(BaseModel):
    index: int
    status: int = Field(description="200 with result, or the item's own 4xx with error")
    result: RouteResponse | None = None
    error: dict[str, Any] | None = None


class BulkAnswer(BaseModel):
    count: int
    succeeded: int
    failed: int
    items: list[BulkItem]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    """As shared.http.json_response, with orjson (answers carry ~2 KB of prompts, and json.dumps
    of them was a tenth of the request's own cost), answered as a ``ReadyResponse``."""
    return ReadyResponse(orjson.dumps(payload), status, headers.items() if headers else ())


def _route(service: RoutingService, body: RouteRequest, endpoint: str) -> dict[str, Any]:
    try:
        return service.route(body, endpoint)
    except RejectedKey as rejected:
        raise Problem(422, rejected.detail, errors=rejected.errors, allowed=KEY_PARTS) from None


def _feedback_unavailable() -> Problem:
    return Problem(
        503,
        "The feedback store is unavailable; nothing was recorded. Retry later.",
        headers={"Retry-After": "5"},
    )


@api.route("/v2/route", methods=["POST"], body=RouteRequest, response=RouteResponse)
def route_v2(_request: flask.Request, body: RouteRequest) -> flask.Response:
    """Route a request to a persona, by resonance key or inferred from the message."""
    return json_response(_route(get_service(), body, "route"))


@api.route(
    "/v1/route",
    methods=["POST"],
    body=V1RouteRequest,
    responses={
        200: Reply(
            V1RouteAnswer, description="The original shape (deprecated).", headers=("Deprecation", "Link")
        )
    },
)
def route_v1(_request: flask.Request, body: V1RouteRequest) -> flask.Response:
    """The original route shape (deprecated: use POST /v2/route)."""
    service = get_service()
    result = _route(service, body, "v1")
    primary = result["primary_persona"]
    body = {
        "content": (
            f"Routed to {primary} (confidence {result['confidence']:.2f}, runner-up "
            f"{result['secondary_persona']}) for {result['resonance_key']}."
        ),
        "persona_used": primary,
        "resonance_key": result["resonance_key"],
        "confidence": result["confidence"],
        "metadata": {
            "request_id": result["request_id"],
            "secondary_persona": result["secondary_persona"],
            "scores": result["scores"],
            "inferred": result["inferred"],
            "reasoning": result["reasoning"],
            "prompt": result["prompt"],
            "weights": result["weights"],
            "experiment": result["experiment"],
            "note": "content is the routing summary; send metadata.prompt to the model for the answer",
        },
    }
    return json_response(
        body, headers={"Deprecation": "true", "Link": '</v2/route>; rel="successor-version"'}
    )


def _charge_items(request: flask.Request, items: int) -> None:
    """Each item of a bulk request costs a rate-limit token, as a request of its own would."""
    guard = get_service().guard
    presented = request.headers.get("X-API-Key")
    if not guard.applies(presented):
        return
    try:
        guard.charge_items(presented, items)
    except TooManyItems as too_many:
        raise Problem(413, too_many.detail, headers={"RateLimit-Limit": str(too_many.burst)}) from None
    except RateLimited as limited:
        raise Problem(429, limited.detail, headers=limited.headers, retry_after=limited.retry_after) from None


@api.route(
    "/v2/bulk",
    methods=["POST"],
    body=BulkRequest,
    responses={200: Reply(BulkAnswer, description="One result or error per item, in order.")},
)
def bulk(request: flask.Request, body: BulkRequest) -> flask.Response:
    """Route up to 1,000 items; each costs a rate-limit token."""
    _charge_items(request, len(body.items))
    requests: list[RouteRequest | dict[str, Any]] = []
    for raw in body.items:
        try:
            requests.append(RouteRequest.model_validate(raw))
        except ValidationError as exc:
            requests.append(item_error(422, "Item does not match the route body.", validation_errors(exc)))
    return json_response(get_service().bulk(requests, include_prompts=body.include_prompts))


@api.route("/v2/recommend", methods=["POST"], body=RecommendRequest)
def recommend_v2(_request: flask.Request, body: RecommendRequest) -> flask.Response:
    """Recommend a persona for a scenario."""
    return json_response(get_service().recommend(body.scenario))


@api.route("/v2/personas", methods=["GET"])
def personas(_request: flask.Request) -> flask.Response:
    service = get_service()
    return json_response(
        {
            "personas": persona_profiles(),
            "tie_order": list(PERSONAS),
            "resonance_key": {"tones": TONES, "paces": PACES, "intents": INTENTS},
            "weights": {
                "version": service.config.version,
                "default": service.config.default,
                "sets": {name: ws.weights.model_dump() for name, ws in service.config.weight_sets.items()},
            },
            "experiment": (
                {
                    "name": service.bandit.name,
                    "arms": service.bandit.arms,
                    "posteriors": service.bandit.posteriors(),
                }
                if service.bandit
                else None
            ),
        }
    )


@api.route(
    "/v2/feedback",
    methods=["POST"],
    body=FeedbackRequest,
    responses={201: FeedbackResponse, 200: Reply(FeedbackResponse, description="Updated or unchanged.")},
)
def feedback(request: flask.Request, body: FeedbackRequest) -> flask.Response:
    """Feedback on a routing answer (by its request_id), aggregated per persona and arm."""
    from functions.routing.feedback import FeedbackOfAnotherCustomer
    from functions.routing.feedback_service import submit_feedback

    service = get_service()
    try:
        answer = submit_feedback(
            body,
            ids=service.ids,
            config=service.config,
            metrics=service.metrics,
            bandit=service.bandit,
            customer_id=request.environ.get(CUSTOMER_ENVIRON),
        )
    except UnknownRequestId:
        raise Problem(
            422,
            "request_id is not one this service issued; send the request_id of a routing answer.",
            errors=[
                {"field": "request_id", "message": "unknown or altered request id", "type": "request_id"}
            ],
        ) from None
    except FeedbackOfAnotherCustomer:
        raise Problem(
            403, "The answer on this request_id was given with another customer's key; it is theirs."
        ) from None
    except FeedbackStoreUnavailable:
        raise _feedback_unavailable() from None
    return shared_json_response(answer, status=201 if answer.outcome == "created" else 200)


@api.route("/v2/feedback/summary", methods=["GET"])
def feedback_summary(_request: flask.Request) -> flask.Response:
    from functions.routing.feedback_service import summarise_feedback

    service = get_service()
    try:
        return shared_json_response(summarise_feedback(service.config, service.bandit))
    except FeedbackStoreUnavailable:
        raise _feedback_unavailable() from None


@api.route("/health", methods=["GET"], **HEALTH_ROUTE)
def health(_request: flask.Request) -> flask.Response:
    from shared.health import status_code

    report = get_service().health()
    return json_response(report, status_code(report))


_KNOWN_ROUTES = frozenset(api.paths())


# (path, method, status) => the request duration's attributes, made once each; bounded, since
# paths are whatever clients send.
_DURATION_ATTRIBUTES: dict[tuple[str, str, int], tuple[tuple[str, str | int], ...]] = {}
_MAX_DURATION_ATTRIBUTES = 1000


def _duration_attributes(path: str, method: str, status: int) -> tuple[tuple[str, str | int], ...]:
    route = path.rstrip("/") or "/"
    attributes: tuple[tuple[str, str | int], ...] = (
        ("http.request.method", method if method in _METHODS else "_OTHER"),
        ("http.response.status_code", status),
    )
    if route in _KNOWN_ROUTES:
        attributes = (("http.route", route), *attributes)
    if status >= 500:  # OpenTelemetry HTTP: error.type is the status code on a 5xx
        attributes = (*attributes, ("error.type", str(status)))
    if len(_DURATION_ATTRIBUTES) < _MAX_DURATION_ATTRIBUTES:
        _DURATION_ATTRIBUTES[(path, method, status)] = attributes
    return attributes


def _client_of(request: flask.Request, service: RoutingService) -> str:
    return client_address(
        request.headers.get("X-Forwarded-For"), request.remote_addr, service.settings.client_ip_hop
    )


def handle(request: flask.Request) -> flask.Response:
    """The ``route`` entry point: API keys, the API, then request metrics and a due metrics flush."""
    started = time.perf_counter()
    bound_body(request)
    service = get_service()
    path = request.path
    extra_headers = None
    customer: str | None = None
    presented = request.environ.get("HTTP_X_API_KEY")  # the X-API-Key header
    if path != "/health" and service.guard.applies(presented):
        try:
            extra_headers, customer = service.guard.admit(presented, lambda: _client_of(request, service))
            # The routes see whose key it was (feedback is stored under the customer, for erasure).
            request.environ[CUSTOMER_ENVIRON] = customer
        except AccessDenied as denied:
            response = Problem(401, denied.detail, headers=denied.headers).to_response(path)
        except RateLimited as limited:
            customer = limited.customer
            response = Problem(
                429, limited.detail, headers=limited.headers, retry_after=limited.retry_after
            ).to_response(path)
        except KeyStoreUnavailable:
            log.exception("customer key store unavailable")
            response = Problem(
                503, "Cannot check the API key now; retry shortly.", headers={"Retry-After": "2"}
            ).to_response(path)
        except Exception:  # a key store refusing for good: logged, a plain 500
            log.exception("checking an API key failed")
            response = Problem(500, "Internal error while checking the API key.").to_response(path)
        else:
            response = api(request)
        if response.status_code in (401, 429):  # answered before the route read the body
            drain_unread_body(request)
    else:
        response = api(request)
    if extra_headers:
        set_headers(response, extra_headers)
    status = response.status_code
    attributes = _DURATION_ATTRIBUTES.get((path, request.method, status))
    if attributes is None:
        attributes = _duration_attributes(path, request.method, status)
    service.metrics.request_duration.record(time.perf_counter() - started, attributes)
    if customer is not None:
        service.metrics.count_customer_request(
            customer, path, body_read_so_far(request), response.status_code
        )
    service.telemetry.maybe_flush()
    return response
