"""Cloud Functions entry points of ION Ops, one per deployed function (see topology.yaml).

Entry points stay thin and import their capability on first call, so each deployed function's
cold start pays only for its own code.
"""

from __future__ import annotations

import importlib
import os

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.api_calls_apps import install_from_env
from shared.http import pubsub_push

# Off unless ION_RECORD_API_CALLS is set (the deployment rehearsal, the tests): records the Google
# API calls this function makes for the permission check (shared/api_calls.py).
install_from_env()

# Deployed (Cloud Run sets K_SERVICE, functions-framework FUNCTION_TARGET), a function whose
# settings are incomplete stops here, at start, with a message naming every variable it lacks,
# instead of serving while it pretends. Each capability's check lives in its settings module (fan-out:
# its deployment module, the one that knows its channels, routes and policy);
# every entry point has one (a test checks this table against topology.yaml).
DEPLOYMENT_CHECKS = {
    "route": "functions.routing.settings",
    "ingest": "functions.ingestion.settings",
    "ingest_pubsub": "functions.ingestion.settings",
    "evaluate_alerts": "functions.alerts.settings",
    "evaluate_alerts_on_ingest": "functions.alerts.settings",
    "fan_out_alerts": "functions.fanout.deployment",
    "manage_alerts": "functions.fanout.deployment",
    "redeliver_alerts": "functions.fanout.deployment",
    "incident_webhooks": "functions.fanout.deployment",
    "store_dead_letters": "functions.deadletters.settings",
    "manage_dead_letters": "functions.deadletters.settings",
    "snapshot_cost": "functions.cost.settings",
    "snapshot_cost_budget": "functions.cost.settings",
    "adjust_scaling": "functions.scaling.settings",
    "score_health": "functions.health.settings",
    "mail_reports": "functions.reports.settings",
}


def _check_deployment() -> None:
    if not os.environ.get("K_SERVICE"):
        return
    target = os.environ.get("FUNCTION_TARGET", "")
    if target not in DEPLOYMENT_CHECKS:
        raise SystemExit(
            f"FUNCTION_TARGET={target!r} is not an entry point of main.py: {sorted(DEPLOYMENT_CHECKS)}"
        )
    from shared.deployment import refuse_to_start
    from shared.roles import deployment_problems as role_problems

    missing_roles = role_problems(target)  # who may call what (shared/roles.py)
    try:
        importlib.import_module(DEPLOYMENT_CHECKS[target]).check_deployment(target)
    except SystemExit as refused:
        if missing_roles:
            raise SystemExit(f"{refused}; {'; '.join(missing_roles)}") from None
        raise
    refuse_to_start(target, missing_roles)


_check_deployment()

# Pattern for every entry point (keep them this thin):
#
#   @functions_framework.http
#   def route(request: flask.Request) -> flask.Response:
#       from functions.routing.main import handle
#       return handle(request)
#
#   @pubsub_push  # a push subscription's endpoint: the body is checked, then a CloudEvent
#   def fan_out_alerts(event: CloudEvent) -> None:
#       from functions.fanout.main import handle_event
#       handle_event(event)


@pubsub_push
def fan_out_alerts(event: CloudEvent) -> None:
    from functions.fanout.main import handle_event

    handle_event(event)


@functions_framework.http
def manage_alerts(request: flask.Request) -> flask.Response:
    from functions.fanout.main import handle

    return handle(request)


@pubsub_push
def redeliver_alerts(event: CloudEvent) -> None:
    from functions.fanout.main import handle_redrive

    handle_redrive(event)


@functions_framework.http
def incident_webhooks(request: flask.Request) -> flask.Response:
    from functions.fanout.main import handle_webhooks

    return handle_webhooks(request)


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    from functions.ingestion.main import handle

    return handle(request)


@pubsub_push
def ingest_pubsub(event: CloudEvent) -> None:
    from functions.ingestion.main import handle_event

    handle_event(event)


@functions_framework.http
def route(request: flask.Request) -> flask.Response:
    from functions.routing.main import handle

    return handle(request)


@functions_framework.http
def evaluate_alerts(request: flask.Request) -> flask.Response:
    from functions.alerts.main import handle

    return handle(request)


@pubsub_push
def evaluate_alerts_on_ingest(event: CloudEvent) -> None:
    from functions.alerts.main import handle_event

    handle_event(event)


@pubsub_push
def store_dead_letters(event: CloudEvent) -> None:
    from functions.deadletters.main import handle_event

    handle_event(event)


@functions_framework.http
def manage_dead_letters(request: flask.Request) -> flask.Response:
    from functions.deadletters.main import handle

    return handle(request)


@functions_framework.http
def snapshot_cost(request: flask.Request) -> flask.Response:
    from functions.cost.main import handle

    return handle(request)


@pubsub_push
def snapshot_cost_budget(event: CloudEvent) -> None:
    from functions.cost.main import handle_budget_event

    handle_budget_event(event)


@functions_framework.http
def adjust_scaling(request: flask.Request) -> flask.Response:
    from functions.scaling.main import handle

    return handle(request)


@functions_framework.http
def score_health(request: flask.Request) -> flask.Response:
    from functions.health.main import handle

    return handle(request)


@functions_framework.http
def mail_reports(request: flask.Request) -> flask.Response:
    from functions.reports.main import handle

    return handle(request)
