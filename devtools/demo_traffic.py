"""The persona service's side of `make demo`: its request latencies per region, with a daily shape
compressed into minutes and now and then a slowed region, as its OpenTelemetry SDK would export
them over OTLP/HTTP JSON."""

from __future__ import annotations

import json
import math
import random
from typing import Any

REGIONS = {"us-central1": 1.0, "europe-west1": 0.6, "asia-southeast1": 0.35}
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0]  # the SDK's defaults, in s


def daily_shape(elapsed: float, day_minutes: float) -> float:
    """0.2 at night to 1.0 at the afternoon peak, one compressed day every ``day_minutes``."""
    hour = (elapsed / 60 / day_minutes * 24 + 8) % 24  # the demo starts at 08:00
    return 0.2 + 0.8 * max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.2


def breaching(elapsed: float, every_minutes: float) -> bool:
    """A 4-minute breach starting one minute in, then every ``every_minutes``."""
    if not every_minutes or elapsed < 60:
        return False
    return (elapsed - 60) % (every_minutes * 60) < 240


def histogram_point(latencies: list[float], start_ns: int, end_ns: int, attributes: dict[str, Any]) -> dict:
    counts = [0] * (len(BOUNDS) + 1)
    for value in latencies:
        counts[next((k for k, bound in enumerate(BOUNDS) if value <= bound), len(BOUNDS))] += 1
    return {
        "startTimeUnixNano": str(start_ns),
        "timeUnixNano": str(end_ns),
        "count": str(len(latencies)),
        "sum": sum(latencies),
        "min": min(latencies),
        "max": max(latencies),
        "bucketCounts": [str(c) for c in counts],
        "explicitBounds": BOUNDS,
        "attributes": [
            {"key": key, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for key, v in attributes.items()
        ],
    }


def otlp_batch(
    rng: random.Random, shape: float, slow_region: str | None, start_ns: int, end_ns: int
) -> bytes:
    """One export of the persona service in each region: latency histograms per status code."""
    resources = []
    for region, scale in REGIONS.items():
        requests = max(1, int(rng.gauss(60 * scale * shape, 3)))
        median = 0.09 if region == slow_region else 0.035  # a P95 near 160 ms: high, not critical
        latencies = [rng.lognormvariate(math.log(median), 0.35) for _ in range(requests)]
        errors = sum(1 for _ in range(requests) if rng.random() < 0.002)
        points = [histogram_point(latencies[errors:], start_ns, end_ns, {"http.response.status_code": 200})]
        if errors:
            points.append(
                histogram_point(latencies[:errors], start_ns, end_ns, {"http.response.status_code": 503})
            )
        resources.append(
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "persona-router"}},
                        {"key": "cloud.region", "value": {"stringValue": region}},
                    ]
                },
                "scopeMetrics": [
                    {
                        "scope": {"name": "ion-mentoring"},
                        "metrics": [
                            {
                                "name": "http.server.request.duration",
                                "unit": "s",
                                "histogram": {"aggregationTemporality": 1, "dataPoints": points},
                            }
                        ],
                    }
                ],
            }
        )
    return json.dumps({"resourceMetrics": resources}).encode()
