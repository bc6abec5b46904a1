"""The fan-out capability's entry points: ``handle_event`` for the ``alerts`` topic and ``handle``
for its HTTP function (group timers, silence API, the flush tick, the daily digest)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import flask
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from functions.fanout import silences
from shared.clock import utcnow
from shared.dead_letters import first_published, redrives_of
from shared.events import decode_pubsub
from shared.http import Api, Problem, json_response, read_body, read_json, scheduled_time
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


@api.route("/health")
def health(_request: flask.Request) -> flask.Response:
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status_code(report))


@api.route("/v1/silences", methods=["POST"])
def create_silence(request: flask.Request) -> flask.Response:
    body = read_json(request, silences.SilenceIn)
    silence = silences.create(body)
    log.info(
        "silence created",
        extra={
            "silence_id": silence.id,
            "created_by": silence.created_by,
            "ends_at": silence.ends_at.isoformat(),
        },
    )
    return json_response(
        silence.to_api(utcnow()), status=201, headers={"Location": f"/v1/silences/{silence.id}"}
    )


@api.route("/v1/silences", methods=["GET"])
def list_silences(request: flask.Request) -> list[dict[str, Any]]:
    state = request.args.get("state")
    if state is not None and state not in silences.STATES:
        raise Problem(
            422,
            f"state {state!r} is not one of {', '.join(silences.STATES)}.",
            errors=[{"field": "state", "message": "unknown state"}],
            allowed=list(silences.STATES),
        )
    now = utcnow()
    return [s.to_api(now) for s in silences.list_all(state)]  # type: ignore[arg-type]


@api.route("/v1/silences/<silence_id>", methods=["GET"])
def get_silence(_request: flask.Request, silence_id: str) -> dict[str, Any]:
    silence = silences.get(_checked_id(silence_id))
    if silence is None:
        raise Problem(404, f"No silence with id {silence_id}.")
    return silence.to_api(utcnow())


@api.route("/v1/silences/<silence_id>", methods=["DELETE"])
def expire_silence(_request: flask.Request, silence_id: str) -> dict[str, Any]:
    silence = silences.expire(_checked_id(silence_id))
    if silence is None:
        raise Problem(404, f"No silence with id {silence_id}.")
    log.info("silence expired", extra={"silence_id": silence.id})
    return silence.to_api(utcnow())


def _checked_id(silence_id: str) -> str:
    if not (0 < len(silence_id) <= 64) or not all(c.isalnum() or c == "-" for c in silence_id):
        raise Problem(404, f"No silence with id {silence_id[:64]}; ids are UUIDs.")
    return silence_id


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


@api.route("/v1/flush/group", methods=["POST"])
def flush_group(request: flask.Request) -> dict[str, Any]:
    """One group's timer (Cloud Tasks, at the due time): flush it if due, send its repeat if due.
    Early: 409 with Retry-After and nothing done (Cloud Tasks retries with the queue's backoff)."""
    from functions.fanout.ticks import NotDueYet
    from functions.fanout.ticks import flush_group as flush_one

    body = read_json(request, FlushGroupRequest)
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


@api.route("/v1/digest", methods=["POST"])
def digest(request: flask.Request) -> dict[str, Any]:
    """Send the digest of ``date`` (default: the UTC day before the scheduled time)."""
    from functions.fanout.channels.base import DeliveryFailed
    from functions.fanout.digest import send_digest

    body = read_json(request, DigestRequest) if read_body(request) else DigestRequest()
    day = body.day or (_scheduled_time(request) - timedelta(days=1)).date()
    try:
        return send_digest(day)
    except DeliveryFailed as exc:
        raise Problem(
            503, f"The digest could not be mailed: {exc.reason}", headers={"Retry-After": "60"}
        ) from None


def _scheduled_time(request: flask.Request) -> datetime:
    return scheduled_time(request) or utcnow()
