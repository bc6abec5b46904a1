"""HTTP and Pub/Sub handlers of alert evaluation (entry points in /main.py).

HTTP (``evaluate_alerts``; locally every path of the capability's port):

- ``POST /`` or ``POST /v1/evaluate`` — one evaluation cycle over every rule (Cloud Scheduler,
  every minute). Body optional: ``{"rules": [names]}`` evaluates only those.
- ``POST /v1/tune`` — the tuning job (daily): recommendations from the last 7 days, stored in
  Firestore ``alert_recommendations/latest`` and returned.
- ``GET /v1/recommendations`` — the latest stored recommendations.
- ``GET /v1/alerts[?state=firing|pending|resolved|inactive][&rule=NAME]`` — current alert states.
- ``GET /v1/rules`` — the loaded rules. ``GET /health``.

Pub/Sub (``evaluate_alerts_on_ingest``, topic ``metric-updates``): evaluates at once the rules
reading a metric the stored batch touched. A failing evaluation raises (Pub/Sub retries, bounded
by the dead-letter policy); a malformed or stale message is dropped.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

import flask
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.alerts.engine import CycleResult, DetectorCache, Evaluator
from functions.alerts.rules import RulesError, active_rules
from shared.clock import utcnow
from shared.http import Api, Problem, read_json
from shared.logging import get_logger
from shared.messages import AlertTransition, MetricsIngested

api = Api("alerts")
log = get_logger("alerts")
RECOMMENDATIONS = "alert_recommendations"


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    topic: str = Field(default="alerts", validation_alias="ION_ALERTS_TOPIC")
    # Transitions stored but not yet acknowledged by Pub/Sub are published again after this.
    republish_after_seconds: int = Field(
        default=60, gt=0, validation_alias="ION_ALERTS_REPUBLISH_AFTER_SECONDS"
    )
    tuning_days: float = Field(default=7.0, gt=0, le=90, validation_alias="ION_ALERTS_TUNING_DAYS")


@lru_cache(maxsize=1)
def settings() -> AlertSettings:
    return AlertSettings()


_detectors = DetectorCache()


class EvaluateBody(BaseModel):
    rules: list[str] | None = Field(default=None, description="only these rules (default: all)")


def _rules() -> list[Any]:
    try:
        return active_rules()
    except RulesError as exc:
        # The deployed rules file is ours: a broken one is a bug of ours, logged with every error.
        log.error("rules file is invalid", extra={"errors": exc.errors})
        raise


def _publisher(store: Any) -> Any:
    from shared.pubsub import publish

    topic = settings().topic

    def send(transition: AlertTransition) -> None:
        try:
            publish(
                topic,
                transition,
                attributes={
                    "severity": transition.severity,
                    "state": transition.state,
                    "rule": transition.rule,
                },
            )
        except Exception:
            log.exception("publishing transition failed", extra={"transition_id": transition.transition_id})
            return
        store.mark_published(transition.transition_id)

    return send


def evaluate(rule_names: set[str] | None = None, metrics: set[str] | None = None) -> CycleResult:
    from functions.alerts.source import QueryApiSource
    from functions.alerts.state import FirestoreStateStore

    store = FirestoreStateStore()
    send = _publisher(store)
    now = utcnow()
    for pending in store.unpublished(now - timedelta(seconds=settings().republish_after_seconds)):
        send(pending)
    rules = [
        r
        for r in _rules()
        if (rule_names is None or r.name in rule_names) and (metrics is None or r.metrics() & metrics)
    ]
    result = Evaluator(QueryApiSource(), store, send, _detectors).run(rules, now)
    log.info(
        "evaluated %d rules, %d series, %d transitions",
        result.rules,
        result.series,
        len(result.transitions),
        extra={"errors": result.errors} if result.errors else {},
    )
    return result


def _summary(result: CycleResult) -> dict[str, Any]:
    return {
        "evaluated_at": result.evaluated_at.isoformat(),
        "rules": result.rules,
        "series": result.series,
        "transitions": [t.model_dump(mode="json") for t in result.transitions],
        "errors": result.errors,
    }


@api.route("/", methods=["POST"])
@api.route("/v1/evaluate", methods=["POST"])
def evaluate_cycle(request: flask.Request) -> dict[str, Any]:
    body = read_json(request, EvaluateBody) if request.get_data(cache=True) else EvaluateBody()
    names = set(body.rules) if body.rules is not None else None
    if names is not None:
        known = {r.name for r in _rules()}
        unknown = sorted(names - known)
        if unknown:
            raise Problem(422, f"Unknown rules: {', '.join(unknown)}.", allowed=sorted(known))
    return _summary(evaluate(names))


class AlertsQuery(BaseModel):
    state: Literal["inactive", "pending", "firing", "resolved"] | None = None
    rule: str | None = None


@api.route("/v1/alerts", methods=["GET"])
def list_alerts(request: flask.Request) -> dict[str, Any]:
    from pydantic import ValidationError

    from functions.alerts.state import FirestoreStateStore
    from shared.http import validation_errors

    try:
        query = AlertsQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise Problem(422, "Invalid query parameters.", errors=validation_errors(exc)) from None
    states = [
        s
        for s in FirestoreStateStore().all_states()
        if (query.state is None or s.state == query.state) and (query.rule is None or s.rule == query.rule)
    ]
    states.sort(key=lambda s: (s.rule, s.fingerprint))
    return {"alerts": [s.model_dump(mode="json") for s in states]}


@api.route("/v1/rules", methods=["GET"])
def list_rules(request: flask.Request) -> dict[str, Any]:
    return {"rules": [r.model_dump(mode="json", by_alias=True) for r in _rules()]}


@api.route("/v1/tune", methods=["POST"])
def tune_job(request: flask.Request) -> dict[str, Any]:
    from functions.alerts.source import QueryApiSource
    from functions.alerts.tune import recommend_for_rules
    from shared.firestore import get_firestore

    now = utcnow()
    recs = recommend_for_rules(_rules(), QueryApiSource(), now, settings().tuning_days)
    payload = {"generated_at": now.isoformat(), "recommendations": [r.model_dump(mode="json") for r in recs]}
    get_firestore().collection(RECOMMENDATIONS).document("latest").set(payload)
    return payload


@api.route("/v1/recommendations", methods=["GET"])
def latest_recommendations(request: flask.Request) -> dict[str, Any]:
    from shared.firestore import get_firestore

    snap = get_firestore().collection(RECOMMENDATIONS).document("latest").get()
    if not snap.exists:
        raise Problem(404, "No recommendations yet; POST /v1/tune (scheduled daily) writes them.")
    return dict(snap.to_dict())


@api.route("/health", methods=["GET"])
def health(request: flask.Request) -> dict[str, Any]:
    return {"status": "ok", "rules": len(_rules())}


def handle(request: flask.Request) -> flask.Response:
    return api(request)


def handle_event(event: Any) -> None:
    from shared.events import decode_pubsub

    delivery = decode_pubsub(event, MetricsIngested)
    if delivery is None:
        return
    touched = set(delivery.body.metrics)
    result = evaluate(metrics=touched)
    if result.errors:
        raise RuntimeError(f"evaluation failed for {sorted(result.errors)}; Pub/Sub will retry")
