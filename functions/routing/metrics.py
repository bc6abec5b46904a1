"""The routing function's instruments, under OpenTelemetry semantic-convention names where one exists."""

from __future__ import annotations

import orjson
from pydantic import ConfigDict, ValidationError, create_model

from functions.routing.models import FeedbackRequest, V1RouteRequest
from functions.routing.process_telemetry import get_telemetry, reset_telemetry
from functions.routing.telemetry import Telemetry
from shared.customer_keys import CUSTOMER_FEEDBACK_METRIC, CUSTOMER_REQUESTS_METRIC

SERVICE_NAME = "routing"


class RoutingMetrics:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.request_duration = telemetry.histogram(
            "http.server.request.duration", "s", "Duration of HTTP server requests."
        )
        self.persona_selected = telemetry.counter(
            "ion.routing.persona.selected", "{decision}", "Routing decisions by primary persona."
        )
        self.confidence = telemetry.histogram(
            "ion.routing.confidence", "1", "Confidence of routing decisions (0-1)."
        )
        self.key_source = telemetry.counter(
            "ion.routing.key.source", "{decision}", "Whether the resonance key was given or inferred."
        )
        self.cache_requests = telemetry.counter(
            "ion.cache.requests", "{lookup}", "Cache lookups by tier, result and endpoint."
        )
        self.cache_evictions = telemetry.counter(
            "ion.cache.evictions", "{item}", "Items dropped from a cache tier (size or expiry)."
        )
        self.l2_available = telemetry.gauge(
            "ion.cache.l2.available", "1", "1 while the L2 (Redis) cache answers, 0 while it does not."
        )
        self.experiment_arm = telemetry.counter(
            "ion.routing.experiment.arm", "{decision}", "Decisions per experiment arm."
        )
        self.feedback = telemetry.counter(
            "ion.routing.feedback", "{feedback}", "Feedback received, by persona and helpfulness."
        )
        self.rejected = telemetry.counter(
            "ion.routing.rejected", "{request}", "Requests refused by API key checks or rate limits."
        )
        # Per-customer usage for customer health; `customer` is bounded by the registry (only
        # authenticated customer keys are counted, ids are short and validated at issue).
        self.customer_requests = telemetry.counter(
            CUSTOMER_REQUESTS_METRIC, "{request}", "Requests by customer key, feature and outcome."
        )
        self.customer_feedback = telemetry.counter(
            CUSTOMER_FEEDBACK_METRIC, "{answer}", "Feedback answers by customer: helpful, rating, NPS."
        )

    def count_customer_request(self, customer: str, path: str, body_bytes: bytes, status: int) -> None:
        """One request made with a customer's key: its feature, its outcome, and for feedback the
        answer (bounded labels only)."""
        outcome = (
            "ok"
            if status < 400
            else "rate_limited"
            if status == 429
            else "client_error"
            if status < 500
            else "server_error"
        )
        route = path.rstrip("/")
        feature = _FEATURES.get(route, "other")
        if feature == "route":
            feature = "route_key" if _key_given(route, body_bytes) else "route_message"
        self.customer_requests.add(1, (("customer", customer), ("feature", feature), ("outcome", outcome)))
        if feature == "feedback" and status == 201:  # a new answer (a repeated one is 200)
            for answer in _answers(body_bytes):
                self.customer_feedback.add(1, (("customer", customer), ("answer", answer)))


_FEATURES = {
    "/v2/route": "route",
    "/v1/route": "route",
    "/v2/bulk": "bulk",
    "/v2/recommend": "recommend",
    "/v2/feedback": "feedback",
}


def _key_given(route: str, body_bytes: bytes) -> bool:
    """Whether a route request named its resonance key, read as its model reads it: the first of
    the field's names present (``/v1/route`` also takes ``key``) and not null."""
    try:
        body = orjson.loads(body_bytes)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(body, dict):
        return False
    names = _KEY_NAMES_V1 if route == "/v1/route" else ("resonance_key",)
    return next((body[name] for name in names if name in body), None) is not None


def _answers(body_bytes: bytes) -> list[str]:
    """A feedback answer's labels, its fields read as the route validated them: ``"false"`` is not
    helpful, a rating of ``4.0`` is a 4 (read raw, the first counted helpful, the second not)."""
    try:
        answer = _FeedbackAnswer.model_validate_json(body_bytes)
    except ValidationError:
        return []
    labels = ["helpful" if answer.helpful else "not_helpful"]
    return labels + [
        f"{name}_{value}"
        for name, value in (("rating", answer.rating), ("nps", answer.nps))
        if value is not None
    ]


def _key_names(alias: object) -> tuple[str, ...]:
    choices = getattr(alias, "choices", None)
    return tuple(str(choice) for choice in choices) if choices else ("resonance_key",)


# The answer fields of a feedback body, with the request model's own types and bounds.
_FeedbackAnswer = create_model(
    "FeedbackAnswer",
    __config__=ConfigDict(extra="ignore"),
    **{
        name: (FeedbackRequest.model_fields[name].annotation, FeedbackRequest.model_fields[name])
        for name in ("helpful", "rating", "nps")
    },  # type: ignore[call-overload]
)
# The names /v1/route reads the key under, in the order its model tries them.
_KEY_NAMES_V1 = _key_names(V1RouteRequest.model_fields["resonance_key"].validation_alias)


_metrics: RoutingMetrics | None = None


def get_metrics() -> RoutingMetrics:
    global _metrics
    if _metrics is None:
        _metrics = RoutingMetrics(get_telemetry(SERVICE_NAME))
    return _metrics


def reset_metrics() -> None:
    """A fresh aggregator on next use (tests change the metrics settings between cases)."""
    global _metrics
    _metrics = None
    reset_telemetry()
