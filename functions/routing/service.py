"""The routing function: its state (built once per instance) and its HTTP API.

Request path of ``POST /v2/route`` with a key: parse JSON (pydantic), one dict lookup for the key,
one for the decision (precomputed per weight set), a signed request id, the user prompt, JSON out,
a few in-process metric updates. No I/O unless a message needs inferring and misses L1, the
experiment is on for a new user, or the metrics batch is due.
"""

from __future__ import annotations

import time
from typing import Any

import flask
import orjson
from pydantic import ValidationError

from functions.routing.auth import ApiKeyGuard
from functions.routing.cache import TwoTierCache, content_key
from functions.routing.config import RoutingSettings, get_routing_settings, load_weight_config
from functions.routing.engine import (
    INTENTS,
    PACES,
    PERSONAS,
    TONES,
    DecisionTable,
    InvalidKey,
    ResonanceKey,
    parse_key,
    persona_profiles,
    user_prompt,
)
from functions.routing.experiment import Bandit
from functions.routing.ids import RequestIds
from functions.routing.inference import Inference, infer
from functions.routing.metrics import RoutingMetrics, get_metrics, reset_metrics
from functions.routing.models import (
    BulkRequest,
    FeedbackRequest,
    RecommendRequest,
    RouteRequest,
    V1RouteRequest,
)
from functions.routing.recommend import recommend
from shared.http import Api, Problem, read_json, validation_errors
from shared.logging import get_logger
from shared.redis import get_redis
from shared.settings import get_settings

log = get_logger("routing")
api = Api("routing")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_ALL_PARTS = ["tone", "pace", "intent"]


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
        )
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
            raise Problem(
                422,
                f"resonance_key {raw!r} is not valid: {exc}.",
                errors=exc.errors,
                allowed={"tone": list(TONES), "pace": list(PACES), "intent": list(INTENTS)},
            ) from None

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
        metrics.persona_selected.add(1, self._persona_attrs[decision.primary])
        metrics.confidence.record(decision.confidence, self._persona_attrs[decision.primary])
        metrics.key_source.add(1, self._source_attrs["inferred" if inference else "given"])
        prompt = None
        if include_prompt:
            context = (
                body.context[-self.settings.context_messages :] if self.settings.context_messages else []
            )
            prompt = {
                "system": decision.system_prompt,
                "user": user_prompt(body.message, [(m.role, m.content) for m in context], key),
            }
        return {
            "request_id": self.ids.issue(
                decision.key_index, decision.primary_index, self.config.version, arm_index, time.time()
            ),
            "resonance_key": str(key),
            "primary_persona": decision.primary,
            "secondary_persona": decision.secondary,
            "confidence": decision.confidence,
            "scores": decision.scores,
            "inferred": _ALL_PARTS if inference else [],
            "inference": inference.as_dict() if inference else None,
            "reasoning": decision.reasoning,
            "prompt": prompt,
            "weights": {"set": table.name, "version": self.config.version},
            "experiment": experiment,
        }

    def route(self, body: RouteRequest, endpoint: str) -> dict[str, Any]:
        if body.resonance_key is not None:
            return self.decide(self.parse(body.resonance_key), None, body)
        assert body.message is not None  # the model guarantees a key or a message
        inference = self.infer_cached(body.message, endpoint)
        return self.decide(inference.key, inference, body)

    def bulk(self, body: BulkRequest) -> dict[str, Any]:
        requests: list[RouteRequest | dict[str, Any]] = []
        for raw in body.items:
            try:
                requests.append(RouteRequest.model_validate(raw))
            except ValidationError as exc:
                requests.append(
                    _item_problem(422, "Item does not match the route body.", validation_errors(exc))
                )
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
                        self.parse(request.resonance_key), None, request, include_prompt=body.include_prompts
                    )
                else:
                    assert request.message is not None
                    inference = Inference.from_dict(inferences[content_key(request.message)])
                    result = self.decide(
                        inference.key, inference, request, include_prompt=body.include_prompts
                    )
            except Problem as problem:
                error = _item_problem(problem.status, problem.detail, problem.errors or [])
                items.append({"index": index, "status": problem.status, "error": error})
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

    def health(self) -> dict[str, Any]:
        redis_check = _check_redis()
        firestore_check = _check_firestore()
        degraded = (redis_check["configured"] and not redis_check["ok"]) or not firestore_check["ok"]
        self.metrics.l2_available.set(1 if redis_check["ok"] else 0)
        report = {
            "status": "degraded" if degraded else "ok",
            "service": "routing",
            "checks": {"redis": redis_check, "firestore": firestore_check},
            "serving": {
                "routing": True,
                "cache_l1_items": self.cache.l1_size(),
                "cache_l2": "on"
                if self.cache.l2_available()
                else ("down" if redis_check["configured"] else "off"),
                "feedback": firestore_check["ok"],
            },
            "weights": {"version": self.config.version, "default": self.config.default},
            "experiment": self.bandit.name if self.bandit else None,
            "metrics": {
                "pending_series": self.telemetry.series_count(),
                "published_batches": self.telemetry.published_batches,
                "failed_batches": self.telemetry.failed_batches,
            },
        }
        return report


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    """As shared.http.json_response, with orjson: answers carry ~2 KB of prompts, and json.dumps
    of them was a tenth of the request's own cost."""
    response = flask.Response(orjson.dumps(payload), status=status, mimetype="application/json")
    if headers:
        response.headers.update(headers)
    return response


def _item_problem(status: int, detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    problem: dict[str, Any] = {"status": status, "detail": detail}
    if errors:
        problem["errors"] = errors
    return problem


def _check_redis() -> dict[str, Any]:
    client = get_redis()
    if client is None:
        return {"configured": False, "ok": False, "detail": "REDIS_URL unset: no L2 cache, local rate limits"}
    started = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return {"configured": True, "ok": False, "error": type(exc).__name__, "detail": str(exc)[:200]}
    return {"configured": True, "ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_firestore() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        from functions.routing.feedback import STATS_COLLECTION
        from shared.firestore import get_firestore

        get_firestore().collection(STATS_COLLECTION).limit(1).get(timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return {"ok": False, "error": type(exc).__name__, "detail": str(exc)[:200]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


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


# HTTP ------------------------------------------------------------------------------------------


@api.route("/v2/route", methods=["POST"])
def route_v2(request: flask.Request) -> flask.Response:
    return json_response(get_service().route(read_json(request, RouteRequest), "route"))


@api.route("/v1/route", methods=["POST"])
def route_v1(request: flask.Request) -> flask.Response:
    service = get_service()
    result = service.route(read_json(request, V1RouteRequest), "v1")
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


@api.route("/v2/bulk", methods=["POST"])
def bulk(request: flask.Request) -> flask.Response:
    return json_response(get_service().bulk(read_json(request, BulkRequest)))


@api.route("/v2/recommend", methods=["POST"])
def recommend_v2(request: flask.Request) -> flask.Response:
    return json_response(get_service().recommend(read_json(request, RecommendRequest).scenario))


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


@api.route("/v2/feedback", methods=["POST"])
def feedback(request: flask.Request) -> flask.Response:
    from functions.routing.feedback_api import submit_feedback

    return submit_feedback(get_service(), read_json(request, FeedbackRequest))


@api.route("/v2/feedback/summary", methods=["GET"])
def feedback_summary(_request: flask.Request) -> flask.Response:
    from functions.routing.feedback_api import summarise_feedback

    return summarise_feedback(get_service())


@api.route("/health", methods=["GET"])
def health(_request: flask.Request) -> flask.Response:
    return json_response(get_service().health())


_KNOWN_ROUTES = frozenset(api.paths())


def handle(request: flask.Request) -> flask.Response:
    """The ``route`` entry point: API keys, the API, then request metrics and a due metrics flush."""
    started = time.perf_counter()
    service = get_service()
    path = request.path
    extra_headers = None
    customer = None
    if path != "/health" and service.guard.applies(request):
        admission = service.guard.admit(request)
        extra_headers, customer = admission.headers, admission.customer
        response = admission.problem.to_response(path) if admission.problem else api(request)
    else:
        response = api(request)
    if extra_headers:
        response.headers.update(extra_headers)
    route = path.rstrip("/") or "/"
    method = request.method if request.method in _METHODS else "_OTHER"
    attributes: tuple[tuple[str, str | int], ...] = (
        ("http.request.method", method),
        ("http.response.status_code", response.status_code),
    )
    if route in _KNOWN_ROUTES:
        attributes = (("http.route", route), *attributes)
    service.metrics.request_duration.record(time.perf_counter() - started, attributes)
    if customer is not None:
        service.metrics.count_customer_request(customer, request, response)
    service.telemetry.maybe_flush()
    return response
