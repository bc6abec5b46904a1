"""Cloud Functions entry points of ION Ops, one per deployed function (see topology.yaml).

Entry points stay thin and import their capability on first call, so each deployed function's
cold start pays only for its own code.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

# Pattern for every entry point (keep them this thin):
#
#   @functions_framework.http
#   def route(request: flask.Request) -> flask.Response:
#       from functions.routing.main import handle
#       return handle(request)
#
#   @functions_framework.cloud_event
#   def fan_out_alerts(event: CloudEvent) -> None:
#       from functions.fanout.main import handle_event
#       handle_event(event)


@functions_framework.cloud_event
def fan_out_alerts(event: CloudEvent) -> None:
    from functions.fanout.main import handle_event

    handle_event(event)


@functions_framework.http
def manage_alerts(request: flask.Request) -> flask.Response:
    from functions.fanout.main import handle

    return handle(request)


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    from functions.ingestion.main import handle

    return handle(request)


@functions_framework.cloud_event
def ingest_pubsub(event: CloudEvent) -> None:
    from functions.ingestion.main import handle_event

    handle_event(event)


@functions_framework.http
def route(request: flask.Request) -> flask.Response:
    from functions.routing.service import handle

    return handle(request)


@functions_framework.http
def evaluate_alerts(request: flask.Request) -> flask.Response:
    from functions.alerts.main import handle

    return handle(request)


@functions_framework.cloud_event
def evaluate_alerts_on_ingest(event: CloudEvent) -> None:
    from functions.alerts.main import handle_event

    handle_event(event)


@functions_framework.http
def mail_reports(request: flask.Request) -> flask.Response:
    from functions.reports.main import handle

    return handle(request)
