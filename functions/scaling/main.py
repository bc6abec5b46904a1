"""HTTP handlers of scaling adjustment (entry point ``adjust_scaling`` in /main.py).

- ``POST /`` or ``POST /v1/scaling/run`` — one decision per region (Cloud Scheduler, every
  5 minutes) for the slot of ``X-CloudScheduler-ScheduleTime`` (the clock's without it; a stale
  one is 400). Body optional: ``{"regions": [names], "dry_run": true}`` (dry_run can only force a
  dry run). Answers the decisions; 503 when applying failed for a region with a passing fault or
  a region was not done within the deadline (the scheduler retries); a target the API refuses for
  good (no such service) is `misconfigured`, reported once as a notice and answered 200.
- ``GET /v1/scaling[?region=NAME]`` — per region: current settings, the forecast and the last
  decisions.
- ``POST /v1/capacity/run`` — the daily capacity job (daily peaks kept without TTL, 30/90/365-day
  forecasts); ``GET /v1/capacity`` — the latest capacity forecast per region.
- ``GET /v1/rules`` — the loaded time-of-day rules. ``GET /health``.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field

from functions.scaling.rules import RulesError, RuleSet, active_rules
from functions.scaling.settings import get_scaling_settings
from functions.scaling.store import DecisionRecord
from shared.clock import utcnow
from shared.http import HEALTH_ROUTE, Api, Problem, Reply, json_response, scheduled_time
from shared.logging import get_logger

api = Api("scaling")
log = get_logger("scaling")


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regions: list[str] | None = Field(default=None, description="only these regions (default: all)")
    dry_run: bool = Field(default=False, description="record without applying, whatever the settings")


class RunAnswer(BaseModel):
    dry_run: bool
    decisions: list[dict[str, Any]]
    skipped: Any
    failed: Any
    misconfigured: Any
    timed_out: list[str] = Field(default=[], description="not done within the deadline: nothing recorded")


class RegionsAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    regions: dict[str, Any]


class RegionQuery(BaseModel):
    region: str | None = Field(default=None, max_length=64, description="one region (default: every region)")


_RUN = {
    "body": RunBody,
    "body_required": False,
    "responses": {
        200: Reply(RunAnswer, description="The decisions."),
        503: Reply(
            RunAnswer,
            description="Applying failed for a region with a passing fault, or a region was not done "
            "within the deadline; the scheduler retries.",
        ),
    },
    # A schedule time that is no time, or stale (more than 30 minutes old) or in the future.
    "problems": (400,),
}


def _rules() -> RuleSet:
    """The rules, narrowed to the configured targets' regions and services when there are any."""
    try:
        rules = active_rules()
    except RulesError as exc:
        log.error("scaling rules file is invalid", extra={"errors": exc.errors})
        raise
    targets = get_scaling_settings().targets
    if not targets:
        return rules
    return RuleSet(
        regions={
            t.region: rules.regions[t.region].model_copy(update={"service": t.service})
            for t in targets
            if t.region in rules.regions
        }
    )


def _target_project() -> str:
    from shared.settings import get_settings

    targets = get_scaling_settings().targets
    return targets[0].project if targets else get_settings().project


def _publish(notice: Any) -> None:
    """A notice that cannot be published is logged, not retried: the decision or forecast it
    announces is already stored and visible through the API."""
    from shared.notices import publish_notice

    try:
        publish_notice(notice)
    except Exception:
        log.exception("publishing a scaling notice failed", extra={"notice": notice.rule})


def _announce(record: DecisionRecord) -> None:
    from functions.scaling.notices import notice_for

    _publish(notice_for(record))


@api.route("/", methods=["POST"], **_RUN)
@api.route("/v1/scaling/run", methods=["POST"], **_RUN)
def run(request: flask.Request, body: RunBody) -> flask.Response:
    """One decision per region (every minute), for the slot the scheduler meant."""
    from functions.scaling import service
    from functions.scaling.cloudrun import CloudRunScaler
    from functions.scaling.notices import problem_notice
    from functions.scaling.sources import FirestoreGuard, QueryApiHistory
    from functions.scaling.store import FirestoreDecisionStore

    # The slot is the one the scheduler meant: a retry decides it again, with the same rules.
    try:
        at = service.decision_time(scheduled_time(request), utcnow())
    except ValueError as exc:
        raise Problem(400, f"X-CloudScheduler-ScheduleTime {exc}: no decision is made for it.") from None
    rules = _rules()
    unknown = sorted(set(body.regions or []) - set(rules.regions))
    if unknown:
        raise Problem(422, f"Unknown region(s) {', '.join(unknown)}.", allowed=sorted(rules.regions))
    settings = get_scaling_settings()
    # The minute before the slot must be in the store before it is read: the min follows it.
    time.sleep(service.settle_wait(at, utcnow(), settings.settle_seconds))
    dry_run = body.dry_run or settings.effective_dry_run
    scaler = None
    # The live values are read in a dry run too (run.services.get): the policy steps from them.
    # Only a local run with no Cloud Run endpoint at all decides without them.
    if not dry_run or settings.cloudrun_endpoint or os.environ.get("K_SERVICE"):
        scaler = CloudRunScaler(
            _target_project(),
            settings.cloudrun_endpoint,
            settings.apply_level,
            settings.apply_timeout_seconds,
        )
    result = service.run_cycle(
        at=at,
        rules=rules,
        settings=settings,
        history=QueryApiHistory(settings.route_service),
        guard=FirestoreGuard(),
        store=FirestoreDecisionStore(),
        scaler=scaler,
        announce=_announce,
        regions=body.regions,
        report=lambda record: _publish(problem_notice(record)),
        dry_run=dry_run,
    )
    payload = {
        "dry_run": dry_run,
        "decisions": [record.model_dump(mode="json") for record in result.records],
        "skipped": result.skipped,
        "failed": result.failed,
        # Refused for good (no such service, no permission): reported once, not a retry storm.
        "misconfigured": result.misconfigured,
        # Not done within the deadline, nothing recorded: the scheduler's retry decides them.
        "timed_out": result.timed_out,
    }
    return json_response(payload, status=503 if result.failed or result.timed_out else 200)


@api.route("/v1/scaling", methods=["GET"], query=RegionQuery, response=RegionsAnswer, problems=(404,))
def current(_request: flask.Request, query: RegionQuery) -> dict[str, Any]:
    """Per region: current settings, the forecast and the last decisions."""
    from functions.scaling.store import FirestoreDecisionStore

    rules = _rules()
    wanted = query.region
    if wanted is not None and wanted not in rules.regions:
        raise Problem(404, f"No region {wanted!r}.", allowed=sorted(rules.regions))
    store = FirestoreDecisionStore()
    regions = {}
    for region in [wanted] if wanted else list(rules.regions):
        stored = store.load(region)
        last = stored.recent[0] if stored.recent else None
        regions[region] = {
            "service": rules.regions[region].service,
            "time_zone": rules.regions[region].time_zone,
            # What was last applied (a dry run applies nothing); the last decision says what it
            # would set and what the service had.
            "min_instances": stored.state.min_instances,
            "max_instances": stored.state.max_instances,
            "changed_at": stored.state.changed_at,
            "bounds_now": rules.bounds(region, utcnow()).model_dump(),
            "forecast": last.decision.forecast.model_dump() if last else None,
            "capacity": last.decision.capacity.model_dump() if last else None,
            "last_decisions": [
                {
                    "at": r.decision.at,
                    "min_instances": r.decision.min_instances,
                    "max_instances": r.decision.max_instances,
                    "previous_min": r.decision.previous_min,
                    "previous_max": r.decision.previous_max,
                    "desired_min": r.decision.desired_min,
                    "bound_by": r.decision.bound_by,
                    "max_bound_by": r.decision.max_bound_by,
                    "from_live": r.decision.from_live,
                    "rule": r.decision.rule,
                    "guard_firing": r.decision.guard_firing,
                    "outcome": r.outcome,
                    "error": r.error,
                    "monthly_cost_change_usd": r.monthly_cost_change_usd,
                }
                for r in stored.recent
            ],
        }
    return {"dry_run": get_scaling_settings().effective_dry_run, "regions": regions}


@api.route("/v1/capacity/run", methods=["POST"], response=RegionsAnswer)
def run_capacity(request: flask.Request) -> dict[str, Any]:
    """The daily capacity job (schedule ``scaling-capacity``): daily peaks kept, 30/90/365-day
    forecasts stored and returned; a ceiling the forecast outgrows is announced as a notice."""
    from functions.scaling.capacity import run_capacity_job
    from functions.scaling.sources import QueryApiHistory
    from functions.scaling.store import FirestoreCapacityStore

    settings = get_scaling_settings()
    forecasts = run_capacity_job(
        now=utcnow(),
        rules=_rules(),
        settings=settings,
        history=QueryApiHistory(settings.route_service),
        store=FirestoreCapacityStore(),
        announce=_publish,
    )
    return {"regions": {region: f.model_dump(mode="json") for region, f in forecasts.items()}}


@api.route("/v1/capacity", methods=["GET"], response=RegionsAnswer)
def capacity(request: flask.Request) -> dict[str, Any]:
    from functions.scaling.store import FirestoreCapacityStore

    return {"regions": FirestoreCapacityStore().forecasts()}


@api.route("/v1/rules", methods=["GET"], response=RuleSet)
def rules(request: flask.Request) -> dict[str, Any]:
    return _rules().model_dump()


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("scaling", lambda: "alerts")


@api.route("/health", methods=["GET"], **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    """Firestore and the alerts topic probed (cached a few seconds), and the rules load."""
    from shared.health import status_code

    report = dict(_health().report())
    checks = dict(report["checks"])
    try:
        checks["rules"] = {"ok": True, "regions": len(_rules().regions)}
    except RulesError:
        log.exception("scaling rules do not load")
        checks["rules"] = {"ok": False, "error": "RulesError"}
    report.update(checks=checks, mode="dry-run" if get_scaling_settings().effective_dry_run else "apply")
    if not all(c["ok"] for c in checks.values()):
        report["status"] = "degraded"
    return json_response(report, status_code(report))


def handle(request: flask.Request) -> flask.Response:
    return api(request)


if os.environ.get("K_SERVICE"):
    get_scaling_settings()  # a deployed function missing a setting it needs refuses to start
