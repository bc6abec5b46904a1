"""Silences, as Alertmanager's API v2 has them: matchers, a start, an end, an author and a comment.

A silence is ``pending`` before ``startsAt``, ``active`` from ``startsAt`` until ``endsAt`` and
``expired`` after. An active silence mutes every alert whose labels satisfy all its matchers.
Expiring one (DELETE) sets its end to now; a pending silence expired this way never starts.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from functions.fanout.matchers import Matcher, matches_all
from functions.fanout.records import KEEP_EXPIRED_SILENCE, field_filter
from functions.fanout.records import SILENCES as COLLECTION
from shared.clock import utcnow
from shared.compat import known_fields, unknown_fields
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.paging import after_listed

MAX_DURATION = timedelta(days=365)
SilenceState = Literal["active", "pending", "expired"]
STATES: tuple[SilenceState, ...] = ("active", "pending", "expired")
log = get_logger("fanout.silences")


class SilenceIn(BaseModel):
    """``POST /v1/silences`` body."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        # Shown in /openapi.json (and sent by the contract test: create, then get and expire it).
        json_schema_extra={
            "examples": [
                {
                    "matchers": [{"name": "alertname", "value": "latency-p95-high"}],
                    "startsAt": "2099-01-01T00:00:00Z",
                    "endsAt": "2099-01-02T00:00:00Z",
                    "createdBy": "ops@example.com",
                    "comment": "maintenance window",
                }
            ]
        },
    )

    matchers: list[Matcher] = Field(min_length=1, max_length=20)
    starts_at: AwareDatetime | None = Field(default=None, alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy", min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _sane(self) -> SilenceIn:
        if all(m.matches_value("") for m in self.matchers):
            raise ValueError(
                "at least one matcher must not match the empty string, or the silence would mute everything"
            )
        start = self.starts_at or utcnow()
        if self.ends_at <= start:
            raise ValueError("endsAt must be after startsAt (or after now when startsAt is omitted)")
        if self.ends_at <= utcnow():
            raise ValueError("endsAt is in the past; a silence must end in the future")
        if self.ends_at - start > MAX_DURATION:
            raise ValueError("a silence may last at most 365 days")
        return self


class Silence(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    matchers: list[Matcher]
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str
    updated_at: AwareDatetime = Field(alias="updatedAt")
    # Matcher fields a newer version stored that this one does not know (``_newer_matcher_fields``).
    uninterpretable: list[str] = Field(default=[], exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _newer_matcher_fields(cls, data: Any) -> Any:
        # During a deploy an older instance reads silences a newer one stored. A matcher field it
        # does not know may change what the matcher matches, so it is not guessed at: the silence
        # is read (listed, expired) but mutes nothing here, as a page too many beats one lost.
        if not isinstance(data, dict) or not isinstance(data.get("matchers"), list):
            return data
        unknown: set[str] = set()
        matchers = []
        for matcher in data["matchers"]:
            if isinstance(matcher, dict):
                unknown.update(unknown_fields(Matcher, matcher))
            matchers.append(known_fields(Matcher, matcher) if isinstance(matcher, dict) else matcher)
        return {**data, "matchers": matchers, "uninterpretable": sorted(unknown)} if unknown else data

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        if now < self.ends_at:
            return "active"
        return "expired"

    def mutes(self, labels: dict[str, str], now: datetime) -> bool:
        if self.uninterpretable:
            return False
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def to_api(self, now: datetime) -> dict[str, Any]:
        body = self.model_dump(mode="json", by_alias=True)
        body["status"] = {"state": self.state(now)}
        return body


def _store(silence: Silence) -> dict[str, Any]:
    return {
        **silence.model_dump(mode="json", by_alias=True),
        # Native timestamps so that Firestore can range-query and expire them.
        "endsAt": silence.ends_at,
        "startsAt": silence.starts_at,
        "expire_at": silence.ends_at + KEEP_EXPIRED_SILENCE,
    }


def _load(raw: dict[str, Any]) -> Silence:
    return Silence.model_validate({k: v for k, v in raw.items() if k != "expire_at"})


def new_silence(body: SilenceIn) -> Silence:
    """The silence ``body`` asks for, with a new id, not stored yet."""
    now = utcnow()
    return Silence(
        id=str(uuid.uuid4()),
        matchers=body.matchers,
        starts_at=body.starts_at or now,
        ends_at=body.ends_at,
        created_by=body.created_by,
        comment=body.comment,
        updated_at=now,
    )


def create(body: SilenceIn) -> Silence:
    silence = new_silence(body)
    get_firestore().collection(COLLECTION).document(silence.id).create(_store(silence))
    return silence


def create_in(transaction: Any, silence: Silence) -> None:
    """Store a new silence in ``transaction`` (with the record of who asked for it)."""
    transaction.create(get_firestore().collection(COLLECTION).document(silence.id), _store(silence))


def get(silence_id: str, transaction: Any = None) -> Silence | None:
    snapshot = get_firestore().collection(COLLECTION).document(silence_id).get(transaction=transaction)
    return _load(snapshot.to_dict()) if snapshot.exists else None


def page(state: SilenceState | None, limit: int, after: str | None) -> tuple[list[Silence], str | None]:
    """Silences by start then id, those after the silence ``after``: of ``limit`` read, those in
    ``state``, and the last read's id when more may follow. A state is a matter of the time now
    (no stored field says it), so a filtered page may hold fewer than ``limit`` with more to come."""
    now = utcnow()
    silences = get_firestore().collection(COLLECTION)
    query = silences.order_by("startsAt").order_by("__name__")
    if after is not None:
        query = after_listed(query, silences.document(after), lambda _: True, "silence", ["startsAt"])
    read = list(query.limit(limit).stream())
    found = [_load(s.to_dict()) for s in read]
    if state is not None:
        found = [s for s in found if s.state(now) == state]
    return found, read[-1].id if len(read) == limit else None


def expire(silence_id: str) -> Silence | None:
    """End a silence now (idempotent: an expired silence is returned as it is)."""
    from google.cloud import firestore

    client = get_firestore()
    ref = client.collection(COLLECTION).document(silence_id)

    def run(transaction: firestore.Transaction) -> Silence | None:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            return None
        silence = _load(snapshot.to_dict())
        now = utcnow()
        if silence.state(now) == "expired":
            return silence
        update: dict[str, Any] = {"ends_at": now, "updated_at": now}
        if silence.state(now) == "pending":
            update["starts_at"] = now
        expired = silence.model_copy(update=update)
        # Only what expiring changes: what a newer version stored beside it stays as written.
        stored = _store(expired)
        times = ("startsAt", "endsAt", "updatedAt", "expire_at")
        transaction.update(ref, {key: stored[key] for key in times})
        return expired

    return run_transaction(run)


def active(now: datetime) -> list[Silence]:
    """Silences active at ``now`` (ends in the future, started)."""
    query = get_firestore().collection(COLLECTION).where(filter=field_filter("endsAt", ">", now))
    found = [s for s in (_load(d.to_dict()) for d in query.stream()) if s.state(now) == "active"]
    for silence in found:
        if silence.uninterpretable:
            log.warning(
                "a silence has matcher fields this version cannot interpret: it mutes nothing here",
                extra={"silence_id": silence.id, "fields": silence.uninterpretable},
            )
    return found


def silenced_by(labels: dict[str, str], silences: list[Silence], now: datetime) -> str | None:
    for silence in silences:
        if silence.mutes(labels, now):
            return silence.id
    return None
