"""The routing function's instruments, under OpenTelemetry semantic-convention names where one exists."""

from __future__ import annotations

import orjson

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
        feature = _FEATURES.get(path.rstrip("/"), "other")
        body: dict[str, object] = {}
        if feature in ("route", "feedback"):
            try:
                parsed = orjson.loads(body_bytes)
                body = parsed if isinstance(parsed, dict) else {}
            except orjson.JSONDecodeError:
                body = {}
        if feature == "route":
            feature = "route_key" if body.get("resonance_key") is not None else "route_message"
        self.customer_requests.add(1, (("customer", customer), ("feature", feature), ("outcome", outcome)))
        if feature == "feedback" and status == 201:  # a new answer (a repeated one is 200)
            answers = ["helpful" if body.get("helpful") else "not_helpful"]
            for field, low, high in (("rating", 1, 5), ("nps", 0, 10)):
                value = body.get(field)
                if isinstance(value, int) and low <= value <= high:
                    answers.append(f"{field}_{value}")
            for answer in answers:
                self.customer_feedback.add(1, (("customer", customer), ("answer", answer)))


_FEATURES = {
    "/v2/route": "route",
    "/v1/route": "route",
    "/v2/bulk": "bulk",
    "/v2/recommend": "recommend",
    "/v2/feedback": "feedback",
}


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
