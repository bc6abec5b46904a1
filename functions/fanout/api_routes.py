"""The fan-out API's route table: what the routes ``main.py`` declares take and answer (the models
of ``api_models.py``), who may call them and how their operations link, so that ``main.py`` holds
its handlers. Plain data, no HTTP layer: a reply documented with its own description, media or
headers (``shared.http.Reply``) is declared beside its handler."""

from __future__ import annotations

from typing import Any

from functions.fanout.api_models import (
    DigestAnswer,
    DigestRequest,
    FlushAnswer,
    FlushGroupRequest,
    IncidentActionIn,
    IncidentActionOut,
    IncidentPath,
    IncidentsQuery,
    OpenIncidentIn,
    SilencesQuery,
    WebhookAnswer,
)

# OpenAPI links: where what a created silence or incident answered is read back.
SILENCE_LINKS = {
    "get_silence": {"silence_id": "$response.body#/id"},
    "expire_silence": {"silence_id": "$response.body#/id"},
}
INCIDENT_LINKS = {
    "get_incident": {"incident_id": "$response.body#/id"},
}

# The lists, a page at a time: a bare array (the contract's shape), the next page in a header.
LIST_INCIDENTS: dict[str, Any] = {"methods": ["GET"], "query": IncidentsQuery}
INCIDENT_PAGE = (
    "Incidents, newest first. A page holds at most `limit` and about 8 MiB; when more follow, "
    '`Link: <...>; rel="next"` gives the next page\'s address (the same query with `after`).'
)
LIST_SILENCES: dict[str, Any] = {"methods": ["GET"], "query": SilencesQuery}
SILENCE_PAGE = (
    'Silences by start: of `limit` read, those in `state`; more follow while `Link: rel="next"` is given.'
)

# A group's timer: a Cloud Tasks task, early answered 409 (with Retry-After) and retried.
FLUSH_GROUP: dict[str, Any] = {
    "methods": ["POST"],
    "body": FlushGroupRequest,
    "response": FlushAnswer,
    "problems": (409,),
    "role": "tasks",
}
DIGEST: dict[str, Any] = {
    "methods": ["POST"],
    "body": DigestRequest,
    "body_required": False,
    "response": DigestAnswer,
    "problems": (400, 503),
}

OPEN_INCIDENT: dict[str, Any] = {
    "methods": ["POST"],
    "body": OpenIncidentIn,
    "problems": (404, 409),
    "links": {201: INCIDENT_LINKS},
}
# What an operator's change of an incident (acknowledge, resolve, note) is declared with.
INCIDENT_CHANGE: dict[str, Any] = {
    "methods": ["POST"],
    "params": IncidentPath,
    "response": IncidentActionOut,
    "problems": (404,),
}
# Acknowledge and resolve: the note is optional, and so is the body.
INCIDENT_ACTION: dict[str, Any] = {**INCIDENT_CHANGE, "body": IncidentActionIn, "body_required": False}

# Public: Slack and PagerDuty carry no Google identity; each request is verified by the vendor's
# signature (and its age and replay) before anything is read or changed, on its raw body.
_WEBHOOK: dict[str, Any] = {
    "methods": ["POST"],
    "response": WebhookAnswer,
    "problems": (400, 401, 413),
    "role": "public",
}
SLACK_INTERACTIONS: dict[str, Any] = {**_WEBHOOK, "raw_body": ("application/x-www-form-urlencoded",)}
PAGERDUTY_WEBHOOKS: dict[str, Any] = {**_WEBHOOK, "raw_body": ("application/json",)}
