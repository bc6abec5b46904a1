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

from pydantic import BaseModel, ConfigDict, Field

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


PUBLISH = "pubsub.topics.publish"


class PublishNotPermitted(Exception):
    """The topic exists and answered, but this identity may not publish to it."""


def pubsub_probe(topic: str) -> Probe:
    """``TestIamPermissions([pubsub.topics.publish])`` on the topic: it needs no permission of its
    own, so it works for a publisher-only identity, and it proves the one thing the function needs
    (unhealthy when the grant is missing; NotFound when the topic is gone).

    The Pub/Sub emulator does not implement it (UNIMPLEMENTED) and has no IAM to ask: there, and
    only with ``PUBSUB_EMULATOR_HOST`` set, the nearest honest probe is ``GetTopic`` (reachable,
    topic exists), recorded as local-only so the permission check does not demand
    ``pubsub.topics.get`` of a deployed function."""

    def check() -> None:
        import os

        from google.api_core.exceptions import MethodNotImplemented

        from shared.api_calls import local_only
        from shared.pubsub import get_publisher, topic_path

        path = topic_path(topic)
        try:
            answer = get_publisher().api.test_iam_permissions(
                request={"resource": path, "permissions": [PUBLISH]},
                retry=None,
                timeout=PROBE_TIMEOUT_SECONDS,
            )
        except MethodNotImplemented:
            if not os.environ.get("PUBSUB_EMULATOR_HOST"):
                raise
            with local_only("the Pub/Sub emulator does not implement TestIamPermissions"):
                get_publisher().api.get_topic(topic=path, retry=None, timeout=PROBE_TIMEOUT_SECONDS)
            return
        if PUBLISH not in answer.permissions:
            raise PublishNotPermitted(f"this identity may not publish to {path}")

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


class HealthBusy(Exception):
    """No report to give yet and no probe may start now: ``shared.http.Api`` answers it 429 with
    ``Retry-After`` (this module stays free of the HTTP layer)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("No health report yet and the per-instance probe limit is reached; retry shortly.")
        self.retry_after = retry_after


class HealthCheck:
    """Probes on demand, bounded per instance: a report younger than ``ttl_seconds`` is answered
    from memory; a caller arriving while a probe runs gets the last report at once instead of
    queueing behind it; and at most ``max_probes_per_minute`` probe rounds start (a bucket of
    ``PROBE_BURST``), so even with no cache a flood of /health cannot become a flood on
    Firestore, Pub/Sub or Redis. Beyond the limit the last report is answered; only before the
    first report has been made is the answer 429 with Retry-After."""

    PROBE_BURST = 3

    def __init__(
        self,
        service: str,
        probes: Callable[[], Iterable[Probe | None]],
        ttl_seconds: float | None = None,
        max_probes_per_minute: int | None = None,
    ) -> None:
        from shared.settings import get_settings

        settings = get_settings()
        self.service = service
        self.probes = probes
        self.ttl_seconds = settings.health_cache_seconds if ttl_seconds is None else ttl_seconds
        per_minute = max_probes_per_minute or settings.health_max_probes_per_minute
        self._refill_per_second = per_minute / 60.0
        self._tokens = float(self.PROBE_BURST)
        self._refilled_at = time.monotonic()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._probing = threading.Lock()
        self._bucket = threading.Lock()

    def report(self) -> dict[str, Any]:
        """``{"status": "ok"|"degraded", "service", "checks": {name: {"ok", "latency_ms"|"error"}}}``.
        Raises ``HealthBusy`` only when there is no report yet and none may be made now."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
            return cached[1]
        if not self._probing.acquire(blocking=False):
            return self._last_or_busy()
        try:
            cached = self._cached  # another caller may have just probed
            if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
                return cached[1]
            if not self._take_token():
                return self._last_or_busy()
            checks = {probe.name: self._run(probe) for probe in self.probes() if probe is not None}
            ok = all(c["ok"] for c in checks.values())
            report = {"status": "ok" if ok else "degraded", "service": self.service, "checks": checks}
            self._cached = (time.monotonic(), report)
            return report
        finally:
            self._probing.release()

    def _last_or_busy(self) -> dict[str, Any]:
        cached = self._cached
        if cached is None:
            raise HealthBusy(self.retry_after_seconds())
        return cached[1]

    def _take_token(self) -> bool:
        with self._bucket:
            now = time.monotonic()
            elapsed = now - self._refilled_at
            self._tokens = min(float(self.PROBE_BURST), self._tokens + elapsed * self._refill_per_second)
            self._refilled_at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def retry_after_seconds(self) -> int:
        """Seconds until a probe may start again (at least 1)."""
        return max(1, int(1 / self._refill_per_second + 0.999))

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


_push_checks: dict[str, HealthCheck] = {}


def push_function_health(function: str) -> dict[str, Any]:
    """The report of a push entry point served alone (deployed, each is its own service): Firestore
    and every topic topology.yaml says it publishes to. Raises ``HealthBusy`` as ``report`` does."""
    check = _push_checks.get(function)
    if check is None:
        from shared.topology import topology

        spec = topology().functions.get(function)
        topics = list(spec.publishes) if spec is not None else []
        check = HealthCheck(function, lambda: [firestore_probe(), *(pubsub_probe(t) for t in topics)])
        _push_checks[function] = check
    return check.report()


# --- the answer's contract (OpenAPI) ------------------------------------------------------------


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    ok: bool
    latency_ms: float | None = None
    error: str | None = Field(default=None, description="the failure's exception class only")


class HealthReport(BaseModel):
    """200 when every check is ok, else 503 with the same shape."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description="ok or degraded")
    service: str
    checks: dict[str, CheckResult]
