"""The routing service: what an instance builds once (decision tables, caches, bandit, guards,
metrics) and the decisions it answers with. Knows nothing of HTTP; ``main.py`` serves it.

Request path of ``POST /v2/route`` with a key: parse JSON (pydantic), one dict lookup for the key,
one for the decision (precomputed per weight set), a signed request id, the user prompt, JSON out,
a few in-process metric updates. No I/O unless a message needs inferring and misses L1, the
experiment is on for a new user, or the metrics batch is due.
"""

from __future__ import annotations

import time
from typing import Any

from functions.routing.auth import ApiKeyGuard
from functions.routing.auth_failures import FailureLimiter
from functions.routing.cache import TwoTierCache, content_key
from functions.routing.config import load_weight_config
from functions.routing.engine import (
    INTENTS,
    KEY_ONLY_PROMPTS,
    PACES,
    PERSONAS,
    TONES,
    DecisionTable,
    InvalidKey,
    ResonanceKey,
    parse_key,
    user_prompt,
)
from functions.routing.experiment import Bandit
from functions.routing.ids import RequestIds
from functions.routing.inference import Inference, infer
from functions.routing.metrics import RoutingMetrics, get_metrics, reset_metrics
from functions.routing.models import RouteRequest
from functions.routing.recommend import recommend
from functions.routing.settings import RoutingSettings, get_routing_settings
from shared.health import HealthCheck, Probe, firestore_probe, pubsub_probe, redis_probe
from shared.logging import get_logger
from shared.settings import get_settings

log = get_logger("routing")

_ALL_PARTS = ["tone", "pace", "intent"]
KEY_PARTS = {"tone": list(TONES), "pace": list(PACES), "intent": list(INTENTS)}


class RejectedKey(ValueError):
    """A resonance key that does not parse: ``detail`` names it, ``errors`` say which part."""

    def __init__(self, raw: str, exc: InvalidKey) -> None:
        self.detail = f"resonance_key {raw!r} is not valid: {exc}."
        super().__init__(self.detail)
        self.errors = exc.errors


def item_error(status: int, detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """One failed item of a bulk answer."""
    error: dict[str, Any] = {"status": status, "detail": detail}
    if errors:
        error["errors"] = errors
    return error


class RoutingService:
    """Everything an instance builds once: decision tables, caches, bandit, guards, metrics."""

    def __init__(
        self, settings: RoutingSettings | None = None, metrics: RoutingMetrics | None = None
    ) -> None:
        started = time.perf_counter()
        self.settings = settings or get_routing_settings()
        self.config = load_weight_config(self.settings.weights_file)
        self.tables = {name: DecisionTable(name, ws.weights) for name, ws in self.config.weight_sets.items()}
        self.default_table = self.tables[self.config.default]
        self.metrics = metrics or get_metrics()
        self.telemetry = self.metrics.telemetry
        self.health_check = HealthCheck("routing", self._probes, get_settings().health_cache_seconds)
        self.cache = TwoTierCache(
            self.metrics,
            l1_max_items=self.settings.l1_max_items,
            l1_ttl_seconds=self.settings.l1_ttl_seconds,
            l2_ttl_seconds=self.settings.l2_ttl_seconds,
            redis_retry_seconds=self.settings.redis_retry_seconds,
        )
        self.bandit: Bandit | None = None
        if self.settings.experiment:
            if self.config.experiment is None:
                log.warning("ION_ROUTING_EXPERIMENT is on but the weight config defines no experiment")
            else:
                self.bandit = Bandit(
                    self.config.experiment, refresh_seconds=self.settings.experiment_refresh_seconds
                )
        secret = self.settings.request_id_secret or f"ion-routing-local:{get_settings().project}"
        self.ids = RequestIds(secret.encode())
        self.guard = ApiKeyGuard(
            self.settings.api_key_list(),
            rate=self.settings.rate_limit_per_second,
            burst=self.settings.rate_limit_burst,
            metrics=self.metrics,
            lease_tokens=self.settings.rate_limit_lease_tokens,
            lease_seconds=self.settings.rate_limit_lease_seconds,
            failures=FailureLimiter(
                limit=self.settings.auth_failure_limit,
                window_seconds=self.settings.auth_failure_window_seconds,
            ),
        )
        # What every answer of a weight set carries (shared, read-only: answers are only serialised).
        self._weights_answers = {name: {"set": name, "version": self.config.version} for name in self.tables}
        self._persona_attrs = {p: (("persona", p),) for p in PERSONAS}
        self._source_attrs = {s: (("source", s),) for s in ("given", "inferred")}
        # Warm-up: the tables above are every decision; L1 takes what other instances cached.
        self.warmed_items = self.cache.warm(self.settings.warm_items)
        log.info(
            "routing instance ready",
            extra={
                "weights_version": self.config.version,
                "weight_sets": list(self.tables),
                "experiment": self.bandit.name if self.bandit else None,
                "api_keys": len(self.settings.api_key_list()),
                "warmed_items": self.warmed_items,
                "startup_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    # Keys --------------------------------------------------------------------------------------

    def parse(self, raw: str) -> ResonanceKey:
        try:
            return parse_key(raw)
        except InvalidKey as exc:
            raise RejectedKey(raw, exc) from None

    def infer_cached(self, message: str, endpoint: str) -> Inference:
        cache_key = content_key(message)
        cached = self.cache.get(endpoint, cache_key)
        if cached is not None:
            return Inference.from_dict(cached)
        inference = infer(message)
        self.cache.put(endpoint, cache_key, inference.as_dict())
        return inference

    # Decisions ---------------------------------------------------------------------------------

    def decide(
        self,
        key: ResonanceKey,
        inference: Inference | None,
        body: RouteRequest,
        *,
        include_prompt: bool = True,
    ) -> dict[str, Any]:
        table = self.default_table
        arm_index: int | None = None
        experiment = None
        if self.bandit is not None:
            arm_index = self.bandit.assign(body.user_id)
            arm = self.bandit.arms[arm_index]
            table = self.tables[arm]
            experiment = {"name": self.bandit.name, "arm": arm}
            self.metrics.experiment_arm.add(1, (("experiment", self.bandit.name), ("arm", arm)))
        decision = table[key]
        metrics = self.metrics
        persona_attrs = self._persona_attrs[decision.primary]
        metrics.persona_selected.add(1, persona_attrs)
        metrics.confidence.record(decision.confidence, persona_attrs)
        metrics.key_source.add(1, self._source_attrs["inferred" if inference else "given"])
        prompt = None
        if include_prompt:
            keep = self.settings.context_messages
            context = body.context[-keep:] if keep and body.context else []
            if context:
                user = user_prompt(body.message, [(m.role, m.content) for m in context], key)
            else:
                user = (
                    user_prompt(body.message, [], key)
                    if body.message
                    else KEY_ONLY_PROMPTS[decision.key_text]
                )
            prompt = {"system": decision.system_prompt, "user": user}
        return {
            "request_id": self.ids.issue(
                decision.key_index, decision.primary_index, self.config.version, arm_index, time.time()
            ),
            "resonance_key": decision.key_text,
            "primary_persona": decision.primary,
            "secondary_persona": decision.secondary,
            "confidence": decision.confidence,
            "scores": decision.scores,
            "inferred": _ALL_PARTS if inference else [],
            "inference": inference.as_dict() if inference else None,
            "reasoning": decision.reasoning,
            "prompt": prompt,
            "weights": self._weights_answers[table.name],
            "experiment": experiment,
        }

    def route(self, body: RouteRequest, endpoint: str) -> dict[str, Any]:
        if body.resonance_key is not None:
            return self.decide(self.parse(body.resonance_key), None, body)
        assert body.message is not None  # the model guarantees a key or a message
        inference = self.infer_cached(body.message, endpoint)
        return self.decide(inference.key, inference, body)

    def bulk(self, requests: list[RouteRequest | dict[str, Any]], *, include_prompts: bool) -> dict[str, Any]:
        """Route each request; an item that failed to parse comes as its ``item_error``."""
        # Messages to infer: one L1 pass and one MGET for the lot, then one pipelined write.
        wanted = {
            content_key(r.message): r.message
            for r in requests
            if isinstance(r, RouteRequest) and r.resonance_key is None and r.message
        }
        known = self.cache.get_many("bulk", wanted)
        computed = {k: infer(message).as_dict() for k, message in wanted.items() if k not in known}
        self.cache.put_many("bulk", computed)
        inferences = {**known, **computed}
        items: list[dict[str, Any]] = []
        for index, request in enumerate(requests):
            if isinstance(request, dict):
                items.append({"index": index, "status": request["status"], "error": request})
                continue
            try:
                if request.resonance_key is not None:
                    result = self.decide(
                        self.parse(request.resonance_key), None, request, include_prompt=include_prompts
                    )
                else:
                    assert request.message is not None
                    inference = Inference.from_dict(inferences[content_key(request.message)])
                    result = self.decide(inference.key, inference, request, include_prompt=include_prompts)
            except RejectedKey as rejected:
                error = item_error(422, rejected.detail, rejected.errors)
                items.append({"index": index, "status": 422, "error": error})
                continue
            items.append({"index": index, "status": 200, "result": result})
        failed = sum(1 for item in items if item["status"] != 200)
        return {"count": len(items), "succeeded": len(items) - failed, "failed": failed, "items": items}

    def recommend(self, scenario: str) -> dict[str, Any]:
        cache_key = content_key(str(self.config.version), scenario)
        cached = self.cache.get("recommend", cache_key)
        if cached is None:
            cached = recommend(scenario, self.default_table)
            self.cache.put("recommend", cache_key, cached)
        self.metrics.persona_selected.add(
            1, (("persona", cached["recommended_persona"]), ("endpoint", "recommend"))
        )
        return cached

    # Health ------------------------------------------------------------------------------------

    def _probes(self) -> list[Probe | None]:
        probes: list[Probe | None] = [firestore_probe(), redis_probe()]
        if self.telemetry.settings.enabled:
            probes.append(pubsub_probe(self.telemetry.settings.topic))
        return probes

    def health(self) -> dict[str, Any]:
        report = dict(self.health_check.report())
        checks = report["checks"]
        redis_check = checks.get("redis")
        l2_up = bool(redis_check and redis_check["ok"])
        self.metrics.l2_available.set(1 if l2_up else 0)
        report["serving"] = {
            "routing": True,
            "cache_l1_items": self.cache.l1_size(),
            "cache_l2": "on" if self.cache.l2_available() else ("down" if redis_check else "off"),
            "feedback": checks["firestore"]["ok"],
        }
        report["weights"] = {"version": self.config.version, "default": self.config.default}
        report["experiment"] = self.bandit.name if self.bandit else None
        report["metrics"] = {
            "pending_series": self.telemetry.series_count(),
            "published_batches": self.telemetry.published_batches,
            "failed_batches": self.telemetry.failed_batches,
        }
        return report


_service: RoutingService | None = None


def get_service() -> RoutingService:
    global _service
    if _service is None:
        _service = RoutingService()
    return _service


def install_service(service: RoutingService) -> RoutingService:
    """Serve with this instance state (tests hand in one whose metrics they collect)."""
    global _service
    _service = service
    return service


def reset_service() -> None:
    """Forget the instance state (tests change settings between cases)."""
    global _service
    _service = None
    get_routing_settings.cache_clear()
    reset_metrics()
