"""The routing function's instruments, under OpenTelemetry semantic-convention names where one exists."""

from __future__ import annotations

from shared.telemetry import Telemetry, get_telemetry, reset_telemetry

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
