"""Feedback ("was this persona helpful?") in Firestore, aggregated per persona and per arm.

One document per request id (``routing_feedback/{request_id}``) and one running total per persona
and per experiment arm (``routing_feedback_stats/persona:Lua``, ``.../arm:EXP:ARM``), written in
one transaction: a repeated submission changes nothing, a changed answer moves the totals by the
difference, so totals equal the sum of the answers ever stored.

An answer carries a user id and a free-text comment, so it is kept ``FEEDBACK_RETENTION`` after its
last change (Firestore TTL on ``expire_at``; the totals, which name nobody, are kept). An answer
sent with a customer key names the customer (``customer_id``), so erasing a customer finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.clock import utcnow
from shared.firestore import get_route_firestore, run_transaction

# Firestore calls give up after a few seconds: a user is waiting (default retries run 60 s).
CALL_TIMEOUT_SECONDS = 3.0

FEEDBACK_COLLECTION = "routing_feedback"
STATS_COLLECTION = "routing_feedback_stats"
# How long an answer (user id, comment) is kept after its last change; the weekly persona report
# reads the week before it runs, so far less would do.
FEEDBACK_RETENTION = timedelta(days=180)


class FeedbackRecord(BaseModel):
    """A stored answer, as in Firestore."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    helpful: bool
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = None
    persona: str
    resonance_key: str
    weights_version: int
    experiment: str | None = None
    arm: str | None = None
    user_id: str | None = None
    # The customer whose key sent it (None: an operator key or the open API).
    customer_id: str | None = None
    issued_at: datetime
    received_at: datetime
    updated_at: datetime


class Totals(BaseModel):
    """A running total of feedback for one persona or one arm, as in Firestore."""

    model_config = ConfigDict(extra="ignore")

    scope: Literal["persona", "arm"]
    name: str
    experiment: str | None = None
    helpful: int = 0
    not_helpful: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    updated_at: datetime | None = None

    def view(self) -> dict[str, object]:
        answers = self.helpful + self.not_helpful
        return {
            "helpful": self.helpful,
            "not_helpful": self.not_helpful,
            "answers": answers,
            "helpful_rate": round(self.helpful / answers, 4) if answers else None,
            "ratings": self.rating_count,
            "mean_rating": round(self.rating_sum / self.rating_count, 3) if self.rating_count else None,
        }


def persona_totals_id(persona: str) -> str:
    return f"persona:{persona}"


def arm_totals_id(experiment: str, arm: str) -> str:
    return f"arm:{experiment}:{arm}"


Outcome = Literal["created", "updated", "unchanged"]


class FeedbackOfAnotherCustomer(Exception):
    """The answer on this request was given with another customer's key: not theirs to change."""


def store_feedback(record: FeedbackRecord) -> tuple[Outcome, Totals]:
    """Store one answer and move the totals; returns the outcome and the persona's new totals."""
    from google.api_core.exceptions import GoogleAPIError
    from google.cloud import firestore

    client = get_route_firestore()
    bounded = _bounded_retry()
    feedback_ref = client.collection(FEEDBACK_COLLECTION).document(record.request_id)
    totals_refs = {
        persona_totals_id(record.persona): Totals(scope="persona", name=record.persona),
    }
    if record.experiment and record.arm:
        totals_refs[arm_totals_id(record.experiment, record.arm)] = Totals(
            scope="arm", name=record.arm, experiment=record.experiment
        )

    def apply(transaction: firestore.Transaction) -> tuple[Outcome, Totals]:
        snapshot = feedback_ref.get(transaction=transaction, **bounded)
        totals: dict[str, Totals] = {}
        for doc_id, empty in totals_refs.items():
            doc = client.collection(STATS_COLLECTION).document(doc_id).get(transaction=transaction, **bounded)
            totals[doc_id] = Totals.model_validate(doc.to_dict()) if doc.exists else empty.model_copy()
        previous = FeedbackRecord.model_validate(snapshot.to_dict()) if snapshot.exists else None
        # A request id is a bearer token: one leaked must not let another customer rewrite the
        # answer (operator keys, which name no customer, may).
        owner = previous.customer_id if previous is not None else None
        if owner is not None and record.customer_id is not None and owner != record.customer_id:
            raise FeedbackOfAnotherCustomer(record.request_id)
        persona_totals = totals[persona_totals_id(record.persona)]
        if previous is not None and (previous.helpful, previous.rating, previous.comment) == (
            record.helpful,
            record.rating,
            record.comment,
        ):
            return "unchanged", persona_totals
        now = utcnow()
        for doc_id, total in totals.items():
            if previous is not None:
                _apply(total, previous, -1)
            _apply(total, record, +1)
            total.updated_at = now
            transaction.set(client.collection(STATS_COLLECTION).document(doc_id), total.model_dump())
        stored = record.model_copy(update={"received_at": previous.received_at}) if previous else record
        transaction.set(feedback_ref, {**stored.model_dump(), "expire_at": now + FEEDBACK_RETENTION})
        return ("updated" if previous else "created"), persona_totals

    # BeginTransaction retries for 60 s whatever we ask, so a bounded read first finds out
    # whether Firestore answers at all.
    feedback_ref.get(**bounded)
    try:
        return run_transaction(apply, client=client, rounds=2)
    except ValueError as exc:
        # The transactional wrapper hides a failed first read behind "cannot be rolled back".
        if isinstance(exc.__context__, GoogleAPIError):
            raise exc.__context__ from None
        raise


def _bounded_retry() -> dict[str, object]:
    from google.api_core.retry import Retry

    return {
        "retry": Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=CALL_TIMEOUT_SECONDS),
        "timeout": CALL_TIMEOUT_SECONDS,
    }


def _apply(total: Totals, record: FeedbackRecord, sign: int) -> None:
    if record.helpful:
        total.helpful += sign
    else:
        total.not_helpful += sign
    if record.rating is not None:
        total.rating_sum += sign * record.rating
        total.rating_count += sign


def read_totals(
    personas: Sequence[str], experiment: str | None = None, arms: Sequence[str] = ()
) -> list[Totals]:
    """The totals of these personas and of the experiment's arms, read by id: the collection also
    keeps the totals of every arm of every experiment ever run (they name nobody, so they are
    kept), which a summary of the current one never needs."""
    client = get_route_firestore()
    ids = [persona_totals_id(p) for p in personas]
    ids += [arm_totals_id(experiment, arm) for arm in arms] if experiment is not None else []
    refs = [client.collection(STATS_COLLECTION).document(i) for i in ids]
    return [
        Totals.model_validate(doc.to_dict()) for doc in client.get_all(refs, **_bounded_retry()) if doc.exists
    ]


def read_arm_totals(experiment: str, arms: list[str]) -> dict[str, Totals]:
    client = get_route_firestore()
    refs = [client.collection(STATS_COLLECTION).document(arm_totals_id(experiment, arm)) for arm in arms]
    found: dict[str, Totals] = {}
    for doc in client.get_all(refs, **_bounded_retry()):
        if doc.exists:
            totals = Totals.model_validate(doc.to_dict())
            found[totals.name] = totals
    return found


def backfill_expiry(*, page: int = 400) -> int:
    """Give every stored answer without ``expire_at`` (stored before answers expired) one:
    ``updated_at`` + ``FEEDBACK_RETENTION``, so the TTL policy deletes them too. Idempotent; the
    number of answers changed. ``python -m functions.routing.feedback`` runs it once."""
    client = get_route_firestore()
    changed = 0
    last = None
    while True:
        query = client.collection(FEEDBACK_COLLECTION).order_by("__name__").limit(page)
        if last is not None:
            query = query.start_after(last)
        snaps = list(query.stream())
        if not snaps:
            return changed
        batch, pending = client.batch(), 0
        for snap in snaps:
            data = snap.to_dict() or {}
            if "expire_at" not in data and isinstance(data.get("updated_at"), datetime):
                batch.update(snap.reference, {"expire_at": data["updated_at"] + FEEDBACK_RETENTION})
                pending += 1
        if pending:
            batch.commit()
            changed += pending
        last = snaps[-1]


if __name__ == "__main__":
    print(f"{backfill_expiry()} feedback answers given an expiry")
