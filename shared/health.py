"""Health that checks: each HTTP function's ``/health`` calls its real dependencies (Firestore,
the Pub/Sub topics it publishes to, Redis where configured), caches the answer for a few seconds
(a probe storm must not become load on the stores), and answers 503 when one is down.

A failure is reported by its exception class only: exception text can carry hosts, paths or
credentials and is logged, never answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.logging import get_logger

log = get_logger("health")
# Generous enough for a cold client (its first call opens the channel) on a busy instance.
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], None]  # raises when the dependency is unusable


def firestore_probe() -> Probe:
    def check() -> None:
        from shared.firestore import get_firestore

        # One indexed read of a document that need not exist: reachability and permission.
        get_firestore().collection("health_probes").document("probe").get(
            retry=None, timeout=PROBE_TIMEOUT_SECONDS
        )

    return Probe("firestore", check)


def pubsub_probe(topic: str) -> Probe:
    def check() -> None:
        from google.api_core.exceptions import PermissionDenied

        from shared.pubsub import get_publisher, topic_path

        try:
            get_publisher().api.get_topic(topic=topic_path(topic), retry=None, timeout=PROBE_TIMEOUT_SECONDS)
        except PermissionDenied:
            # A publisher-only identity may not read topics: the API answered and knew us.
            return

    return Probe(f"pubsub:{topic}", check)


def redis_probe() -> Probe | None:
    """None when Redis is not configured (then it is not a dependency)."""
    from shared.redis import get_redis

    if get_redis() is None:
        return None

    def check() -> None:
        client = get_redis()
        if client is None:
            raise ConnectionError("Redis client went away")
        client.ping()

    return Probe("redis", check)


class HealthCheck:
    def __init__(
        self, service: str, probes: Callable[[], Iterable[Probe | None]], ttl_seconds: float = 5.0
    ) -> None:
        self.service = service
        self.probes = probes
        self.ttl_seconds = ttl_seconds
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def report(self) -> dict[str, Any]:
        """``{"status": "ok"|"degraded", "service", "checks": {name: {"ok", "latency_ms"|"error"}}}``."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.ttl_seconds:
                return self._cached[1]
            checks = {probe.name: self._run(probe) for probe in self.probes() if probe is not None}
            ok = all(c["ok"] for c in checks.values())
            report = {"status": "ok" if ok else "degraded", "service": self.service, "checks": checks}
            self._cached = (now, report)
            return report

    def _run(self, probe: Probe) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            probe.check()
        except Exception as exc:  # noqa: BLE001 - any failure means the dependency is down
            log.warning(
                "health probe %s failed: %s",
                probe.name,
                exc,
                extra={"probe": probe.name, "service": self.service},
            )
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def status_code(report: dict[str, Any]) -> int:
    return 200 if report["status"] == "ok" else 503


def store_and_topic(service: str, topic: Callable[[], str]) -> HealthCheck:
    """The usual function's dependencies: Firestore and the topic it publishes to."""
    return HealthCheck(service, lambda: [firestore_probe(), pubsub_probe(topic())])
