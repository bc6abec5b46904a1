"""The fan-out capability's entry points: ``handle_event`` for the ``alerts`` topic and ``handle``
for its HTTP function (group timers, silence API, the flush tick, the daily digest)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import flask
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from functions.fanout import silences
from shared.audit import audit
from shared.clock import utcnow
from shared.dead_letters import first_published, redrives_of
from shared.events import decode_pubsub
from shared.http import HEALTH_ROUTE, Api, Problem, Reply, caller_of, json_response, scheduled_time
from shared.ids import DocumentId
from shared.logging import get_logger
from shared.messages import AlertTransition

api = Api("fanout")
NEVER_TOO_OLD = timedelta(days=3650)
log = get_logger("fanout")


def handle_event(event: Any) -> None:
    """One alert transition from Pub/Sub: raise to retry, return to drop (or when done)."""
    from functions.fanout.models import mark_late
    from functions.fanout.pipeline import handle_transition
    from shared.settings import get_settings

    # No age limit here: a transition is never dropped for being old, only marked late. One no
    # version of fan-out can read (a new severity, a changed field) goes to alerts-dead-letter
    # with the reason, where the dead-letter store keeps it and pages.
    delivery = decode_pubsub(event, AlertTransition, max_age=NEVER_TOO_OLD, dead_letter=True)
    if delivery is None:
        return
    transition = delivery.body
    # A re-driven transition is as late as its first publish, not its re-drive.
    age = utcnow() - first_published(delivery.attributes, delivery.publish_time)
    if age > timedelta(seconds=get_settings().max_event_age_seconds):
        log.warning(
            "delivering a late transition",
            extra={"transition_id": transition.transition_id, "age_seconds": age.total_seconds()},
        )
        transition = mark_late(transition, age)
    handle_transition(transition)


def handle_redrive(event: Any) -> None:
    """A dead-lettered delivery re-driven to ``alert-deliveries`` (by the dead-letter store): its
    channel gets it once, what the vendor accepted before is not sent again."""
    from functions.fanout.delivery import DeadLetter, redeliver

    delivery = decode_pubsub(event, DeadLetter, max_age=NEVER_TOO_OLD, dead_letter=True)
    if delivery is None:
        return
    # The store numbers each re-drive; the same number twice (Pub/Sub redelivering, a second
    # re-drive of the same letter) is the same delivery and sends once.
    redrive = redrives_of(delivery.attributes) or delivery.body.redrives + 1
    redeliver(delivery.body, redrive)


def handle(request: flask.Request) -> flask.Response:
    return api(request)


class DigestAnswer(BaseModel):
    day: date
    transitions: int
    channels: dict[str, str] = Field(description="per channel: delivered, logged or duplicate")


class FlushAnswer(BaseModel):
    group_id: str
    notifications: list[str] = Field(description="the notifications flushed or repeated")
    errors: int = Field(description="deliveries that failed (the flush tick re-drives them)")
    armed: list[AwareDatetime] = Field(description="the group's next timers")


class SilenceStatus(BaseModel):
    state: silences.SilenceState


class SilenceOut(silences.Silence):
    """A silence as the API answers it (camelCase, as Alertmanager's)."""

    status: SilenceStatus


class SilencePath(BaseModel):
    silence_id: DocumentId(max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="a silence id (a UUID)")  # type: ignore[valid-type]


class SilencesQuery(BaseModel):
    state: silences.SilenceState | None = Field(default=None, description="only silences in this state")


_SILENCE_LINKS = {
    "get_silence": {"silence_id": "$response.body#/id"},
    "expire_silence": {"silence_id": "$response.body#/id"},
}


@lru_cache(maxsize=1)
def _health() -> Any:
    from functions.fanout.settings import get_fanout_settings
    from functions.fanout.timers import timers_probe
    from shared.health import HealthCheck, firestore_probe, pubsub_probe

    # The timer queue is a dependency only when the group timers run on Cloud Tasks.
    return HealthCheck(
        "fanout",
        lambda: [firestore_probe(), pubsub_probe(get_fanout_settings().dead_letter_topic), timers_probe()],
    )


@api.route("/health", **HEALTH_ROUTE)
def health(_request: flask.Request) -> flask.Response:
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status_code(report))


@api.route(
    "/v1/silences",
    methods=["POST"],
    body=silences.SilenceIn,
    responses={201: Reply(SilenceOut, description="Created.", headers=("Location",))},
    links={201: _SILENCE_LINKS},
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


class SilenceList(RootModel[list[SilenceOut]]):
    pass


@api.route("/v1/silences", methods=["GET"], query=SilencesQuery, response=SilenceList)
def list_silences(_request: flask.Request, query: SilencesQuery) -> list[dict[str, Any]]:
    """Every silence, or those in one state."""
    now = utcnow()
    return [s.to_api(now) for s in silences.list_all(query.state)]


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
    """The scheduler's tick (every minute), the timers' safety net: due groups, repeats, flapping
    releases, re-drives."""
    from functions.fanout.ticks import tick

    return tick()


class FlushGroupRequest(BaseModel):
    """What a group's timer task posts (``timers.flush_body``)."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field(pattern=r"^(critical|high|medium|low)-[0-9a-f]{24}$")
    due_at: AwareDatetime


@api.route(
    "/v1/flush/group",
    methods=["POST"],
    body=FlushGroupRequest,
    response=FlushAnswer,
    problems=(409,),
    role="tasks",
)
def flush_group(_request: flask.Request, body: FlushGroupRequest) -> dict[str, Any]:
    """One group's timer (Cloud Tasks, at the due time): flush it if due, send its repeat if due.
    Early: 409 with Retry-After and nothing done (Cloud Tasks retries with the queue's backoff)."""
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


class DigestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    day: date | None = Field(default=None, alias="date")


@api.route(
    "/v1/digest",
    methods=["POST"],
    body=DigestRequest,
    body_required=False,
    response=DigestAnswer,
    problems=(400, 503),
)
def digest(request: flask.Request, body: DigestRequest) -> dict[str, Any]:
    """Send the digest of ``date`` (default: the UTC day before the scheduled time)."""
    from functions.fanout.channels.base import DeliveryFailed
    from functions.fanout.digest import send_digest

    day = body.day or (_scheduled_time(request) - timedelta(days=1)).date()
    today = utcnow().date()
    if day >= today:
        # A digest is sent once per day and channel: one of a day not over yet would be partial
        # and stop the real one. (Found probing the contract: 9999-12-31 was a 500.)
        raise Problem(
            422,
            f"date {day} is not over yet; a digest is of a past day (UTC), at latest "
            f"{today - timedelta(days=1)}.",
            errors=[{"field": "date", "message": "not a past day"}],
        )
    try:
        return send_digest(day)
    except DeliveryFailed as exc:
        raise Problem(
            503, f"The digest could not be mailed: {exc.reason}", headers={"Retry-After": "60"}
        ) from None


def _scheduled_time(request: flask.Request) -> datetime:
    return scheduled_time(request) or utcnow()
