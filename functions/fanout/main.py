"""The fan-out capability's entry points: ``handle_event`` (topic ``alerts``), ``handle_redrive``
(``alert-deliveries``), ``handle`` (manage_alerts: group timers, silences, the flush tick, the digest,
the transition log, incidents) and ``handle_webhooks`` (the public incident_webhooks). Handlers only:
the contract is in ``api_models.py`` and ``api_routes.py``, the work in the domain modules."""

from __future__ import annotations

import json
import math
from typing import Any

import flask

from functions.fanout import api_routes, silences
from functions.fanout.api_models import (
    DigestRequest,
    FlushGroupRequest,
    IncidentActionIn,
    IncidentActionOut,
    IncidentList,
    IncidentOut,
    IncidentPath,
    IncidentsQuery,
    NoteIn,
    OpenIncidentIn,
    SilenceList,
    SilenceOut,
    SilencePath,
    SilencesQuery,
    TransitionsQuery,
    incident_action_out,
    incident_out,
)
from functions.fanout.transition_log import TransitionPage
from functions.fanout.webhook_vendors import PAGERDUTY, SLACK, WebhookVendor
from shared.audit import actor, audit
from shared.clock import utcnow
from shared.http import (
    HEALTH_ROUTE,
    Api,
    Problem,
    Reply,
    array_page,
    bad_cursor,
    caller_of,
    json_array_page,
    json_response,
    read_body,
    scheduled_time,
)
from shared.logging import get_logger
from shared.paging import UnknownCursor

api = Api("fanout")
log = get_logger("fanout")


def handle_event(event: Any) -> None:
    """One alert transition from Pub/Sub: raise to retry, return to drop (or when done)."""
    from functions.fanout.pipeline import take_transition_event

    take_transition_event(event)


def handle_redrive(event: Any) -> None:
    """A dead-lettered delivery re-driven to ``alert-deliveries`` (by the dead-letter store): its
    channel gets it once, what the vendor accepted before is not sent again."""
    from functions.fanout.delivery import take_redrive_event

    take_redrive_event(event)


def handle(request: flask.Request) -> flask.Response:
    return api(request)


@api.route("/health", **HEALTH_ROUTE)
def health(_request: flask.Request) -> flask.Response:
    from functions.fanout.deployment import health_check
    from shared.health import status_code

    report = health_check().report()
    return json_response(report, status_code(report))


@api.route(
    "/v1/silences",
    methods=["POST"],
    body=silences.SilenceIn,
    responses={201: Reply(SilenceOut, description="Created.", headers=("Location",))},
    links={201: api_routes.SILENCE_LINKS},
)
def create_silence(request: flask.Request, body: silences.SilenceIn) -> flask.Response:
    """Mute the alerts whose labels match every matcher, from startsAt to endsAt."""
    silence = silences.create(body.model_copy(update={"created_by": caller_of(request)}))  # never the body's
    audit(
        log,
        "silence.create",
        request.headers,
        "silence created",
        silence_id=silence.id,
        created_by=silence.created_by,
        ends_at=silence.ends_at.isoformat(),
    )
    return json_response(
        silence.to_api(utcnow()), status=201, headers={"Location": f"/v1/silences/{silence.id}"}
    )


@api.route(
    "/v1/silences", responses=array_page(SilenceList, api_routes.SILENCE_PAGE), **api_routes.LIST_SILENCES
)
def list_silences(request: flask.Request, query: SilencesQuery) -> flask.Response:
    """Silences, or those in one state, by start, a page at a time."""
    try:
        found, following = silences.page(query.state, query.limit, query.after)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    return json_array_page(request, [json.dumps(s.to_api(utcnow())).encode() for s in found], following)


@api.route("/v1/silences/<silence_id>", methods=["GET"], params=SilencePath, response=SilenceOut)
def get_silence(_request: flask.Request, silence_id: str) -> dict[str, Any]:
    silence = silences.get(silence_id)
    if silence is None:
        raise Problem(404, f"No silence with id {silence_id}.")
    return silence.to_api(utcnow())


@api.route("/v1/silences/<silence_id>", methods=["DELETE"], params=SilencePath, response=SilenceOut)
def expire_silence(request: flask.Request, silence_id: str) -> dict[str, Any]:
    """End a silence now (it is kept, expired)."""
    silence = silences.expire(silence_id)
    if silence is None:
        raise Problem(404, f"No silence with id {silence_id}.")
    audit(log, "silence.expire", request.headers, "silence expired", silence_id=silence.id)
    return silence.to_api(utcnow())


@api.route("/v1/flush", methods=["POST"])
def flush_tick(_request: flask.Request) -> dict[str, Any]:
    """The scheduler's tick (every minute), the timers' safety net (``ticks.tick`` says what it does)."""
    from functions.fanout.ticks import tick

    return tick()


@api.route("/v1/flush/group", **api_routes.FLUSH_GROUP)
def flush_group(_request: flask.Request, body: FlushGroupRequest) -> dict[str, Any]:
    """One group's timer (Cloud Tasks): flush it and send its repeat if due; early, a 409 to retry."""
    from functions.fanout.ticks import NotDueYet
    from functions.fanout.ticks import flush_group as flush_one

    try:
        return flush_one(body.group_id, body.due_at)
    except NotDueYet as exc:
        raise Problem(
            409,
            f"Not due yet: {exc}. Nothing was flushed.",
            headers={"Retry-After": str(max(1, math.ceil(exc.seconds)))},
        ) from None


@api.route("/v1/digest", **api_routes.DIGEST)
def digest(request: flask.Request, body: DigestRequest) -> dict[str, Any]:
    """Send the digest of ``date`` (default: the UTC day before the scheduled time)."""
    from functions.fanout.channels.base import DeliveryFailed
    from functions.fanout.digest import DayNotOver, day_to_digest, send_digest

    try:
        day = day_to_digest(body.day, scheduled_time(request) or utcnow(), utcnow().date())
    except DayNotOver as exc:
        raise Problem(422, str(exc), errors=[{"field": "date", "message": "not a past day"}]) from None
    try:
        return send_digest(day)
    except DeliveryFailed as exc:
        raise Problem(
            503, f"The digest could not be mailed: {exc.reason}", headers={"Retry-After": "60"}
        ) from None


@api.route("/v1/transitions", methods=["GET"], query=TransitionsQuery, response=TransitionPage)
def list_transitions(_request: flask.Request, query: TransitionsQuery) -> TransitionPage:
    """Transitions received in a window, oldest first: what a capped digest or note leaves out."""
    from functions.fanout import transition_log

    try:
        return transition_log.page(query.since, query.end(), query.severity, query.limit, query.after)
    except UnknownCursor as exc:
        raise Problem(422, str(exc)) from None


# --- incidents ---------------------------------------------------------------------------------


@api.route(
    "/v1/incidents", responses=array_page(IncidentList, api_routes.INCIDENT_PAGE), **api_routes.LIST_INCIDENTS
)
def list_incidents(request: flask.Request, query: IncidentsQuery) -> flask.Response:
    """Incidents, newest first: all, or by state, priority and opening time, a page at a time."""
    from functions.fanout.incident_listing import incident_page

    try:
        page = incident_page(query)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    return json_array_page(request, page.items, page.next)


@api.route(
    "/v1/incidents",
    responses={201: Reply(IncidentOut, description="Opened.", headers=("Location",)), 200: IncidentOut},
    **api_routes.OPEN_INCIDENT,
)
def open_incident_on_demand(request: flask.Request, body: OpenIncidentIn) -> flask.Response:
    """Open an incident for an alert group now (one that severity does not open automatically)."""
    from functions.fanout.incident_admin import GroupHasIncident, NoSuchGroup, open_for_group

    try:
        incident, created = open_for_group(body.group_id, actor(request.headers), body.note)
    except NoSuchGroup:
        raise Problem(
            404, f"No alert group {body.group_id}; groups are listed in the alert messages."
        ) from None
    except GroupHasIncident as exc:
        raise Problem(409, f"Group {body.group_id} already has incident {exc.incident_id} open.",
                      incident_id=exc.incident_id) from None  # fmt: skip
    audit(log, "incident.open", request.headers, "incident opened on demand", incident_id=incident.id)
    return json_response(
        incident_out(incident),
        status=201 if created else 200,
        headers={"Location": f"/v1/incidents/{incident.id}"},
    )


@api.route("/v1/incidents/<incident_id>", methods=["GET"], params=IncidentPath, response=IncidentOut)
def get_incident(_request: flask.Request, incident_id: str) -> IncidentOut:
    """One incident with its timeline."""
    from functions.fanout.incident_store import get_store

    incident = get_store().get(incident_id)
    if incident is None:
        raise Problem(404, f"No incident with id {incident_id}.")
    return incident_out(incident)


@api.route(
    "/v1/incidents/<incident_id>/review",
    methods=["GET"],
    params=IncidentPath,
    responses={200: Reply(None, media=("text/markdown",), description="The review draft (markdown).")},
    problems=(404,),
)
def get_review(_request: flask.Request, incident_id: str) -> flask.Response:
    """The post-incident review draft of a resolved P1/P2 incident, as markdown."""
    from functions.fanout.incident_store import get_store

    incident = get_store().get(incident_id)
    if incident is None:
        raise Problem(404, f"No incident with id {incident_id}.")
    if incident.review is None:
        raise Problem(404, f"Incident {incident_id} has no review draft: drafted when a P1 or P2 resolves.")
    return flask.Response(incident.review.markdown, status=200, mimetype="text/markdown")


def _operator_change(request: flask.Request, incident_id: str, what: str, run: Any) -> IncidentActionOut:
    from functions.fanout.incident_actions import NoSuchIncident

    who = actor(request.headers)
    try:
        outcome = run(who)
    except NoSuchIncident:
        raise Problem(404, f"No incident with id {incident_id}.") from None
    audit(log, f"incident.{what}", request.headers, f"incident {what}", incident_id=incident_id,
          changed=outcome.change.changed)  # fmt: skip
    return incident_action_out(outcome)


@api.route("/v1/incidents/<incident_id>/ack", **api_routes.INCIDENT_ACTION)
def ack_incident(request: flask.Request, incident_id: str, body: IncidentActionIn) -> IncidentActionOut:
    """Acknowledge as the caller (escalation and repeats stop; PagerDuty is told)."""
    from functions.fanout.incident_actions import acknowledge_with_note

    def run(who: str) -> Any:
        return acknowledge_with_note(incident_id, who, "api", body.note)

    return _operator_change(request, incident_id, "acknowledge", run)


@api.route("/v1/incidents/<incident_id>/resolve", **api_routes.INCIDENT_ACTION)
def resolve_incident(request: flask.Request, incident_id: str, body: IncidentActionIn) -> IncidentActionOut:
    """Resolve as the caller, with an optional note (P1/P2: the review draft is written)."""
    from functions.fanout.incident_actions import resolve_incident as resolve

    return _operator_change(
        request, incident_id, "resolve", lambda who: resolve(incident_id, who, "api", body.note)
    )


@api.route("/v1/incidents/<incident_id>/notes", body=NoteIn, **api_routes.INCIDENT_CHANGE)
def add_incident_note(request: flask.Request, incident_id: str, body: NoteIn) -> IncidentActionOut:
    """Add a note to the timeline, as the caller."""
    from functions.fanout.incident_actions import note_incident

    return _operator_change(
        request, incident_id, "note", lambda who: note_incident(incident_id, who, body.text)
    )


# --- Slack's and PagerDuty's requests (also the public function incident_webhooks) -----------


def _take_webhook(request: flask.Request, vendor: WebhookVendor) -> dict[str, Any]:
    from functions.fanout.webhook_auth import Unverified

    secret = vendor.secret()
    if not secret:
        # Unverifiable is unauthenticated: 401, as for a bad signature (deployed, the function
        # does not start without it; locally the variable is simply unset).
        detail = f"{vendor.secret_variable} is not set: no request can be verified, so none is accepted."
        raise Problem(401, detail)
    body = read_body(request)
    try:
        return vendor.take(secret, request.headers, body)
    except Unverified as exc:
        extra = {"path": request.path, "source": vendor.name}
        log.warning("refused a %s request: %s", vendor.name, exc, extra=extra)
        raise Problem(401, f"Refused: {exc}. Nothing was changed.") from None
    except vendor.unreadable() as exc:
        raise Problem(400, vendor.unreadable_detail.format(exc)) from None


def slack_interactions(request: flask.Request) -> dict[str, Any] | flask.Response:
    """Slack's interactivity requests (form ``payload=<json>``), verified with SLACK_SIGNING_SECRET:
    a button's answered with what it did; a dialog's submission with an empty 200, which closes the
    dialog (a body would be read as a ``response_action``)."""
    answer = _take_webhook(request, SLACK)
    if answer.get("view_submission"):
        return flask.Response(b"", status=200)
    return answer


def pagerduty_webhooks(request: flask.Request) -> dict[str, Any]:
    """PagerDuty's v3 webhooks, verified with PAGERDUTY_WEBHOOK_SECRET (X-PagerDuty-Signature)."""
    return _take_webhook(request, PAGERDUTY)


def _register_webhooks(target: Api) -> None:
    target.route("/v1/slack/interactions", **api_routes.SLACK_INTERACTIONS)(slack_interactions)
    target.route("/v1/pagerduty/webhooks", **api_routes.PAGERDUTY_WEBHOOKS)(pagerduty_webhooks)


# manage_alerts serves them too (locally everything is on port 8084); deployed, only the public
# incident_webhooks function is reachable by Slack and PagerDuty, and it serves nothing else.
_register_webhooks(api)
webhook_api = Api("fanout-webhooks")
_register_webhooks(webhook_api)


@webhook_api.route("/health", **HEALTH_ROUTE)
def webhook_health(_request: flask.Request) -> flask.Response:
    from functions.fanout.deployment import webhook_health_check
    from shared.health import status_code

    report = webhook_health_check().report()
    return json_response(report, status_code(report))


def handle_webhooks(request: flask.Request) -> flask.Response:
    return webhook_api(request)


# The entry points served by an Api other than ``api`` (the role table reads each one's own).
ENTRY_POINT_APIS = {"incident_webhooks": webhook_api}
