"""Known traffic for the reports tests: every figure a panel shows can be computed by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devtools.metric_history import MetricHistory

REGIONS = {"us-central1": 0.020, "europe-west1": 0.030, "asia-southeast1": 0.040}
HTTP = "http.server.request.duration"


@dataclass
class Expected:
    requests: int = 0
    errors: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    l1_hit: float = 0.0
    l1_miss: float = 0.0
    l2_hit: float = 0.0
    l2_miss: float = 0.0


def seed(at: list[datetime], *, error_every: int = 0, ok_per_minute: int = 10) -> Expected:
    """Per minute and region: ``ok_per_minute`` requests of 200 at the region's latency, one 503
    every ``error_every`` minutes, and cache lookups (L1 64 hits / 36 misses, L2 32 / 4);
    Cloud Run / Cloud SQL gauges as the collector stores them."""
    history = MetricHistory()
    expected = Expected()
    for index, minute in enumerate(at):
        one_minute(
            history, minute, expected, error=bool(error_every and index % error_every == 0), ok=ok_per_minute
        )
        history.maybe_flush()
    history.flush()
    return expected


def one_minute(
    history: MetricHistory, minute: datetime, expected: Expected, *, error: bool, ok: int = 10
) -> None:
    for region, latency in REGIONS.items():
        base = {"service": "routing", "region": region, "http.route": "/v2/route"}
        history.observe(HTTP, {**base, "http.response.status_code": "200"}, minute, [latency] * ok)
        expected.requests += ok
        expected.by_status["200"] = expected.by_status.get("200", 0) + ok
        if error:
            history.observe(HTTP, {**base, "http.response.status_code": "503"}, minute, [0.5])
            expected.requests += 1
            expected.errors += 1
            expected.by_status["503"] = expected.by_status.get("503", 0) + 1
        cache = {"service": "routing", "region": region, "endpoint": "route"}
        for tier, result, n in (
            ("l1", "hit", 64),
            ("l1", "miss", 36),
            ("l2", "hit", 32),
            ("l2", "miss", 4),
        ):
            history.increment("ion.cache.requests", {**cache, "tier": tier, "result": result}, minute, n)
        expected.l1_hit += 64
        expected.l1_miss += 36
        expected.l2_hit += 32
        expected.l2_miss += 4
        run = {"service": "ion-routing", "region": region}
        history.gauge("cloudrun.container.instance.count", {**run, "state": "active"}, minute, 3)
        history.gauge("cloudrun.container.instance.count", {**run, "state": "idle"}, minute, 1)
        history.observe("cloudrun.container.cpu.utilization", run, minute, [0.55, 0.65])
        history.observe("cloudrun.container.memory.utilization", run, minute, [0.5])
        history.gauge("cloudsql.replication.lag", {"database": "p:ion", "region": region}, minute, 0.04)
        history.gauge("cloudsql.connections", {"database": "p:ion", "region": region}, minute, 12)
        for persona, n in (("Lua", 4), ("Elro", 3), ("Riri", 2), ("Nana", 1)):
            history.increment(
                "ion.routing.persona.selected", {"region": region, "persona": persona}, minute, n
            )
        history.increment(
            "ion.routing.feedback", {"region": region, "persona": "Lua", "helpful": "true"}, minute, 3
        )
        history.increment(
            "ion.routing.feedback", {"region": region, "persona": "Lua", "helpful": "false"}, minute, 1
        )
