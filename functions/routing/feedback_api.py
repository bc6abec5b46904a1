"""``POST /v2/feedback`` and ``GET /v2/feedback/summary``: Firestore is touched only here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask

from functions.routing.engine import PERSONAS
from functions.routing.feedback import FeedbackRecord, Totals, read_totals, store_feedback
from functions.routing.models import FeedbackRequest, FeedbackResponse
from shared.clock import utcnow
from shared.http import Problem, json_response
from shared.logging import get_logger

if TYPE_CHECKING:
    from functions.routing.service import RoutingService

log = get_logger("routing.feedback")


def _store_errors() -> tuple[type[BaseException], ...]:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)


def _unavailable(exc: BaseException) -> Problem:
    log.error("feedback store unavailable", extra={"error": repr(exc)})
    return Problem(
        503,
        "The feedback store is unavailable; nothing was recorded. Retry later.",
        headers={"Retry-After": "5"},
    )


def submit_feedback(service: RoutingService, body: FeedbackRequest) -> flask.Response:
    issued = service.ids.verify(body.request_id)
    if issued is None:
        raise Problem(
            422,
            "request_id is not one this service issued; send the request_id of a routing answer.",
            errors=[
                {"field": "request_id", "message": "unknown or altered request id", "type": "request_id"}
            ],
        )
    config = service.config
    arm = experiment = None
    if (
        issued.arm_index is not None
        and config.experiment is not None
        and issued.weights_version == config.version
        and issued.arm_index < len(config.experiment.arms)
    ):
        arm, experiment = config.experiment.arms[issued.arm_index], config.experiment.name
    now = utcnow()
    record = FeedbackRecord(
        request_id=body.request_id,
        helpful=body.helpful,
        rating=body.rating,
        comment=body.comment,
        persona=issued.persona,
        resonance_key=str(issued.key),
        weights_version=issued.weights_version,
        experiment=experiment,
        arm=arm,
        user_id=body.user_id,
        issued_at=issued.issued_at,
        received_at=now,
        updated_at=now,
    )
    try:
        outcome, totals = store_feedback(record)
    except _store_errors() as exc:
        raise _unavailable(exc) from None
    service.metrics.feedback.add(
        1, (("persona", issued.persona), ("helpful", body.helpful), ("outcome", outcome))
    )
    if service.bandit is not None and arm is not None and outcome != "unchanged":
        service.bandit.refresh_now()
    answer = FeedbackResponse(
        request_id=body.request_id,
        outcome=outcome,
        persona=issued.persona,
        arm=arm,
        persona_satisfaction=totals.view(),
    )
    return json_response(answer, status=201 if outcome == "created" else 200)


def summarise_feedback(service: RoutingService) -> flask.Response:
    try:
        totals = read_totals()
    except _store_errors() as exc:
        raise _unavailable(exc) from None
    personas: dict[str, Any] = {p: Totals(scope="persona", name=p).view() for p in PERSONAS}
    arms: dict[str, Any] = {}
    experiment = config_experiment = service.config.experiment
    for total in totals:
        if total.scope == "persona" and total.name in personas:
            personas[total.name] = total.view()
        elif total.scope == "arm" and experiment and total.experiment == experiment.name:
            arms[total.name] = total.view()
    body: dict[str, Any] = {"personas": personas, "experiment": None}
    if config_experiment is not None:
        posteriors = service.bandit.posteriors() if service.bandit else {}
        body["experiment"] = {
            "name": config_experiment.name,
            "active": service.bandit is not None,
            "arms": {
                arm: {**arms.get(arm, Totals(scope="arm", name=arm).view()), "posterior": posteriors.get(arm)}
                for arm in config_experiment.arms
            },
        }
    return json_response(body)
