"""Feedback use cases: record an answer to a routing decision, summarise the totals.

They take what they need (request ids, weight config, bandit, metrics), not the routing service,
and raise domain errors the handler turns into answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.routing.engine import PERSONAS
from functions.routing.feedback import FeedbackRecord, Totals, read_totals, store_feedback
from functions.routing.models import FeedbackRequest, FeedbackResponse
from shared.clock import utcnow
from shared.logging import get_logger

if TYPE_CHECKING:
    from functions.routing.config import WeightConfig
    from functions.routing.experiment import Bandit
    from functions.routing.ids import RequestIds
    from functions.routing.metrics import RoutingMetrics

log = get_logger("routing.feedback")


class UnknownRequestId(Exception):
    """The request id was not issued by this service (or was altered)."""


class FeedbackStoreUnavailable(Exception):
    """Firestore could not be reached; nothing was recorded."""


def _store_errors() -> tuple[type[BaseException], ...]:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)


def _unavailable(exc: BaseException) -> BaseException:
    """A store down for now is ``FeedbackStoreUnavailable`` (503, retry later); one that refuses
    for good (a permission, a bad request) is raised as it is (a logged 500)."""
    from shared.transient import is_transient

    if not is_transient(exc):
        return exc
    log.error("feedback store unavailable", extra={"error": repr(exc)})
    return FeedbackStoreUnavailable(repr(exc))


def submit_feedback(
    body: FeedbackRequest,
    *,
    ids: RequestIds,
    config: WeightConfig,
    metrics: RoutingMetrics,
    bandit: Bandit | None,
    customer_id: str | None = None,
) -> FeedbackResponse:
    issued = ids.verify(body.request_id)
    if issued is None:
        raise UnknownRequestId(body.request_id)
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
        customer_id=customer_id,
        issued_at=issued.issued_at,
        received_at=now,
        updated_at=now,
    )
    try:
        outcome, totals = store_feedback(record)
    except _store_errors() as exc:
        raise _unavailable(exc) from None
    metrics.feedback.add(1, (("persona", issued.persona), ("helpful", body.helpful), ("outcome", outcome)))
    if bandit is not None and arm is not None and outcome != "unchanged":
        bandit.refresh_now()
    return FeedbackResponse(
        request_id=body.request_id,
        outcome=outcome,
        persona=issued.persona,
        arm=arm,
        persona_satisfaction=totals.view(),
    )


def summarise_feedback(config: WeightConfig, bandit: Bandit | None) -> dict[str, Any]:
    experiment = config.experiment
    try:
        if experiment is None:
            totals = read_totals(PERSONAS)
        else:
            totals = read_totals(PERSONAS, experiment.name, experiment.arms)
    except _store_errors() as exc:
        raise _unavailable(exc) from None
    personas: dict[str, Any] = {p: Totals(scope="persona", name=p).view() for p in PERSONAS}
    arms: dict[str, Any] = {}
    for total in totals:
        if total.scope == "persona" and total.name in personas:
            personas[total.name] = total.view()
        elif total.scope == "arm" and experiment and total.experiment == experiment.name:
            arms[total.name] = total.view()
    body: dict[str, Any] = {"personas": personas, "experiment": None}
    if experiment is not None:
        posteriors = bandit.posteriors() if bandit else {}
        body["experiment"] = {
            "name": experiment.name,
            "active": bandit is not None,
            "arms": {
                arm: {**arms.get(arm, Totals(scope="arm", name=arm).view()), "posterior": posteriors.get(arm)}
                for arm in experiment.arms
            },
        }
    return body
