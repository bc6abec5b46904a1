"""HTTP and Pub/Sub handlers of alert evaluation (entry points in /main.py).

HTTP (``evaluate_alerts``; locally every path of the capability's port):

- ``POST /`` or ``POST /v1/evaluate`` — one evaluation cycle over every rule (Cloud Scheduler,
  every minute), then one ping of the external dead man's switch (``ION_ALERTS_HEARTBEAT_URL``,
  heartbeat.py). Body optional: ``{"rules": [names]}`` evaluates only those (and pings nothing:
  the switch hears of full cycles only).
- ``POST /v1/tune`` — the tuning job (daily): recommendations from the last 7 days, stored in
  Firestore (``recommendation_store``: a document per series) and returned.
- ``GET /v1/recommendations[?limit=][&after=]`` — the latest stored recommendations, a page at a time.
- ``GET /v1/alerts[?state=firing|pending|resolved|inactive][&rule=NAME][&limit=][&after=]`` —
  current alert states, a page at a time (quiet ones are kept 35 days after they last went quiet,
  1 day if they never fired).
- ``GET /v1/rules`` — the loaded rules. ``GET /health``.

Pub/Sub (``evaluate_alerts_on_ingest``, topic ``metric-updates``): evaluates at once the rules
reading a metric the stored batch touched. A rule failing on a store or network down for now
(``engine.retry_may_cure``) raises: Pub/Sub retries, bounded by the dead-letter policy. Any other
failure no retry cures: it is logged as an error (``errors``, as the cycle's line names them) and
the message acknowledged; the full cycle fails on that rule too and pages (``rule_failing``). A
malformed or stale message is dropped.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from functools import lru_cache
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field

from functions.alerts.alert_listing import AlertList, AlertsQuery
from functions.alerts.engine import CycleResult, DetectorCache, Evaluator
from functions.alerts.heartbeat import HeartbeatPinger
from functions.alerts.jobs import JobWatch
from functions.alerts.recommendation_listing import RecommendationList, Recommendations, RecommendationsQuery
from functions.alerts.retired_rules import retire_gone_rules
from functions.alerts.rules import RulesError, configured_rules
from functions.alerts.settings import settings
from shared.clock import utcnow
from shared.http import HEALTH_ROUTE, Api, Problem, bad_cursor, json_response
from shared.logging import get_logger
from shared.messages import AlertTransition, MetricsIngested
from shared.paging import UnknownCursor

api = Api("alerts")
log = get_logger("alerts")


_detectors = DetectorCache()


class RuleEvaluationUnavailable(Exception):
    """Rules that failed on a store or network down for now; raised so Pub/Sub redelivers."""


class EvaluateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "rules" is a 422, not a cycle over all

    rules: list[str] | None = Field(default=None, description="only these rules (default: all)")


class CycleSummary(BaseModel):
    evaluated_at: str
    rules: int
    series: int
    transitions: list[dict[str, Any]]
    errors: dict[str, Any]
    # A cycle over every rule: the external dead man's switch's ping ({ok, detail}), or why none.
    heartbeat: dict[str, Any] | str | None = None


def _rules(include_disabled: bool = False) -> list[Any]:
    try:
        rules = configured_rules()
    except RulesError as exc:
        # The deployed rules file is ours: a broken one is a bug of ours, logged with every error.
        log.error("rules file is invalid", extra={"errors": exc.errors})
        raise
    return rules if include_disabled else [r for r in rules if r.enabled]


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


@lru_cache(maxsize=1)
def job_watch() -> JobWatch:
    from functions.alerts.jobs import CloudSchedulerJobs, JobWatch
    from shared.settings import get_settings

    config = settings()
    scheduler = None
    if config.scheduler_api_url or config.deployed:
        location = config.scheduler_location or get_settings().region
        scheduler = CloudSchedulerJobs(get_settings().project, location, config.scheduler_api_url)
    return JobWatch(scheduler)


def evaluate(rule_names: set[str] | None = None, metrics: set[str] | None = None) -> CycleResult:
    from functions.alerts.source import QueryApiSource
    from functions.alerts.state_store import FirestoreStateStore

    store = FirestoreStateStore()
    send = _publisher(store)
    now = utcnow()
    for pending in store.unpublished(now - timedelta(seconds=settings().republish_after_seconds)):
        send(pending)
    configured = _rules(include_disabled=True)  # read once: one rule set for the whole cycle
    wanted = [r for r in configured if r.enabled and (rule_names is None or r.name in rule_names)]
    rules = [r for r in wanted if metrics is None or r.metrics() & metrics]
    result = Evaluator(QueryApiSource(), store, send, _detectors, job_watch()).run(rules, now)
    full = rule_names is None and metrics is None
    if full:  # only a cycle over the whole rule set may tell a rule is gone
        retire_gone_rules(store, send, configured, result)
    # `alerts_cycle: full` marks a cycle over every rule: Cloud Monitoring counts these lines
    # (log-based metric ion_alerts_evaluation_cycles, terraform/monitoring.tf) and pages when
    # evaluate-alerts has written none for 3 minutes.
    log.info(
        "evaluated %d rules, %d series, %d transitions",
        result.rules,
        result.series,
        len(result.transitions),
        extra={
            "alerts_cycle": "full" if full else "partial",
            **({"errors": result.errors} if result.errors else {}),
        },
    )
    return result


@lru_cache(maxsize=1)
def heartbeat() -> HeartbeatPinger:
    config = settings()
    return HeartbeatPinger(config.heartbeat_url, config.heartbeat_method, config.heartbeat_timeout_seconds)


def _summary(result: CycleResult) -> dict[str, Any]:
    return {
        "evaluated_at": result.evaluated_at.isoformat(),
        "rules": result.rules,
        "series": result.series,
        "transitions": [t.model_dump(mode="json") for t in result.transitions],
        "errors": result.errors,
    }


_EVALUATE = {"body": EvaluateBody, "body_required": False, "response": CycleSummary}


@api.route("/", methods=["POST"], **_EVALUATE)
@api.route("/v1/evaluate", methods=["POST"], **_EVALUATE)
def evaluate_cycle(_request: flask.Request, body: EvaluateBody) -> dict[str, Any]:
    """One evaluation cycle over every rule (or those named); what the scheduler calls."""
    names = set(body.rules) if body.rules is not None else None
    if names is not None:
        known = {r.name for r in _rules()}
        unknown = sorted(names - known)
        if unknown:
            raise Problem(422, f"Unknown rules: {', '.join(unknown)}.", allowed=sorted(known))
    result = evaluate(names)
    summary = _summary(result)
    if names is None:
        pinger = heartbeat()
        ping = pinger.ping(
            f"rules={result.rules} transitions={len(result.transitions)} errors={len(result.errors)}".encode()
        )
        summary["heartbeat"] = (
            pinger.status()["detail"] if ping is None else {"ok": ping.ok, "detail": ping.detail}
        )
    return summary


class RuleList(BaseModel):
    rules: list[dict[str, Any]]


class ScheduleList(BaseModel):
    evaluated_at: str
    factor: float | None = Field(description="the dead man's switch: intervals without success that alert")
    scheduler_api: str
    jobs: list[dict[str, Any]]


@api.route("/v1/alerts", methods=["GET"], query=AlertsQuery, response=AlertList)
def list_alerts(_request: flask.Request, query: AlertsQuery) -> dict[str, Any]:
    """Current alert states, by rule and label set, a page at a time."""
    from functions.alerts import alert_listing
    from functions.alerts.state import effective
    from functions.alerts.state_store import FirestoreStateStore

    try:
        found = alert_listing.page(query)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    # A steady alert is not rewritten every cycle: its rule's newest completed cycle says how
    # recently it was evaluated (and, if active, last seen active), as the old rewrite did.
    done = {name: cycle.completed_at for name, cycle in FirestoreStateStore().cycles().items()}
    return {
        "alerts": [effective(s, done.get(s.rule)).model_dump(mode="json") for s in found],
        "next": found[-1].fingerprint if len(found) == query.limit else None,
    }


@api.route("/v1/rules", methods=["GET"], response=RuleList)
def list_rules(request: flask.Request) -> dict[str, Any]:
    return {"rules": [r.model_dump(mode="json", by_alias=True) for r in _rules()]}


@api.route("/v1/tune", methods=["POST"], response=Recommendations)
def tune_job(request: flask.Request) -> dict[str, Any]:
    from functions.alerts import recommendation_store
    from functions.alerts.source import QueryApiSource
    from functions.alerts.tune import recommend_for_rules

    now = utcnow()
    recs = recommend_for_rules(_rules(), QueryApiSource(), now, settings().tuning_days)
    payload = {"generated_at": now.isoformat(), "recommendations": [r.model_dump(mode="json") for r in recs]}
    recommendation_store.store(now, payload["recommendations"])
    return payload


_RECOMMENDATIONS = {"query": RecommendationsQuery, "response": RecommendationList, "problems": (404,)}


@api.route("/v1/recommendations", methods=["GET"], **_RECOMMENDATIONS)
def latest_recommendations(_request: flask.Request, query: RecommendationsQuery) -> dict[str, Any]:
    """The latest run's recommendations, by rule and labels, a page at a time."""
    from functions.alerts.recommendation_store import load_page

    try:
        latest = load_page(query.limit, query.after)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    if latest is None:
        raise Problem(404, "No recommendations yet; POST /v1/tune (scheduled daily) writes them.")
    return asdict(latest)


@api.route("/v1/schedules", methods=["GET"], response=ScheduleList)
def list_schedules(request: flask.Request) -> dict[str, Any]:
    """Each scheduled job's last success and whether the dead man's switch counts it overdue."""
    from functions.alerts.rules import HeartbeatRule

    watch = job_watch()
    now = utcnow()
    factors = [r.factor for r in _rules() if isinstance(r, HeartbeatRule)]
    factor = min(factors) if factors else None
    jobs = []
    for status in watch.statuses(now):
        seen = status.scheduler
        jobs.append(
            {
                "job": status.job,
                "function": status.function,
                "interval_seconds": status.interval.total_seconds(),
                "last_success_at": status.last_success_at.isoformat() if status.last_success_at else None,
                "counted_from": status.counted_from.isoformat(),
                "intervals_since_success": round(status.overdue_ratio, 3),
                "overdue": factor is not None and status.overdue_ratio > factor,
                "scheduler": None
                if seen is None
                else {
                    "state": seen.state,
                    "last_attempt_at": seen.last_attempt_at.isoformat() if seen.last_attempt_at else None,
                    "last_attempt_ok": seen.last_attempt_ok,
                    "message": seen.message,
                },
            }
        )
    if watch.scheduler is None:
        scheduler_api = "not configured: local run, heartbeats only"
    else:
        scheduler_api = f"unreachable: {watch.scheduler_error}" if watch.scheduler_error else "ok"
    return {"evaluated_at": now.isoformat(), "factor": factor, "scheduler_api": scheduler_api, "jobs": jobs}


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("alerts", lambda: settings().topic)


@api.route("/health", methods=["GET"], **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    from shared.health import status_code

    # The heartbeat is reported, never probed: a request to the URL would count as a ping.
    report = {**_health().report(), "rules": len(_rules()), "heartbeat": heartbeat().status()}
    return json_response(report, status_code(report))


def handle(request: flask.Request) -> flask.Response:
    return api(request)


def handle_event(event: Any) -> None:
    from shared.events import decode_pubsub

    # One no version of this function can read goes to metric-updates-dead-letter with the reason.
    delivery = decode_pubsub(event, MetricsIngested, dead_letter=True)
    if delivery is None:
        return
    touched = set(delivery.body.metrics)
    result = evaluate(metrics=touched)
    transient = result.transient_failures()
    lasting = {name: error for name, error in result.errors.items() if name not in transient}
    if lasting:
        # A defect of the rule or its data fails every redelivery alike: retrying would end each
        # message of the metric in the dead letters, one page each. The scheduled full cycle fails
        # on it too, and its line pages (rule_failing); this partial one is kept out of that count.
        log.error(
            "rules failed on a metric update; acknowledged, not retried",
            extra={
                "alerts_cycle": "partial",
                "errors": lasting,
                "message_id": delivery.message_id,
                "metrics": sorted(touched),
            },
        )
    if transient:
        # A store or network down for now: Pub/Sub redelivers (bounded by the dead-letter policy).
        first = transient[min(transient)]
        raise RuleEvaluationUnavailable(
            f"rules {sorted(transient)} could not be evaluated for now"
        ) from first
