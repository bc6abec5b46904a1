"""Decode a Pub/Sub CloudEvent into a typed message, in one place.

Python-docs-samples convention: raise to retry, return to drop. A message that can never be
processed (not JSON, wrong shape, too old) is dropped with a log line saying why, because
retrying it would only fill the dead-letter topic with the same failure.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.clock import parse_rfc3339, utcnow
from shared.compat import known_fields, newer_schema, unknown_fields
from shared.logging import get_logger
from shared.settings import get_settings

M = TypeVar("M", bound=BaseModel)
log = get_logger("events")


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str = Field(min_length=1)
    message_id: str
    topic: str | None
    publish_time: datetime
    attributes: dict[str, str]


class PubSubMessage(_Envelope):
    """One delivered Pub/Sub message, its data still raw bytes (for bodies that are not JSON)."""

    data: bytes


class PubSubDelivery(_Envelope, Generic[M]):
    """One delivered Pub/Sub message with its decoded, validated body."""

    body: M


def topic_from_source(source: str | None) -> str | None:
    """``//pubsub.googleapis.com/projects/P/topics/T`` (or a push path ending so) → ``T``."""
    if source and "/topics/" in source:
        return source.rsplit("/topics/", 1)[1].split("/", 1)[0] or None
    return None


def read_pubsub(event: Any, *, max_age: timedelta | None = None) -> PubSubMessage | None:
    """The raw message of a Pub/Sub CloudEvent, or None when it is to be dropped (not base64,
    older than ``max_age``, default ``ION_MAX_EVENT_AGE_SECONDS``)."""
    event_id = str(event["id"])
    data = event.data if isinstance(event.data, dict) else {}
    message = data.get("message") or {}
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        log.error("dropping event: message data is not base64", extra={"event_id": event_id})
        return None
    try:
        publish_time = _parse_time(message.get("publishTime") or message.get("publish_time") or event["time"])
        limit = max_age or timedelta(seconds=get_settings().max_event_age_seconds)
        age = utcnow() - publish_time
    except (ValueError, TypeError, OverflowError):
        # No usable publish time (not RFC 3339, no zone, out of range): never processable.
        log.error(
            "dropping event: its publish time is not an RFC 3339 time with a zone",
            extra={"event_id": event_id},
        )
        return None
    if age > limit:
        log.warning(
            "dropping event older than %ss",
            int(limit.total_seconds()),
            extra={"event_id": event_id, "age_seconds": age.total_seconds()},
        )
        return None
    try:
        return PubSubMessage(
            event_id=event_id,
            message_id=str(message.get("messageId") or message.get("message_id") or event_id),
            topic=topic_from_source(event["source"]),
            publish_time=publish_time,
            attributes=dict(message.get("attributes") or {}),
            data=raw,
        )
    except (ValidationError, TypeError, ValueError) as exc:
        # An envelope no delivery can fix (no event id, attributes that are not strings).
        log.error(
            "dropping event: its envelope is malformed",
            extra={"event_id": event_id, "errors": str(exc)[:500]},
        )
        return None


def decode_pubsub(
    event: Any, model: type[M], *, max_age: timedelta | None = None, dead_letter: bool = False
) -> PubSubDelivery[M] | None:
    """The typed JSON message of a Pub/Sub CloudEvent, or None when it is to be acknowledged
    without processing. With ``dead_letter``, a body that does not match ``model`` is published to
    the topic's dead-letter topic with the reason first (raising if that fails, so it is
    delivered again), so the dead-letter store keeps it and alerts: nothing is acked unread; so is
    one whose ``schema_version`` is newer than ``model`` reads, marked recoverable."""
    message = read_pubsub(event, max_age=max_age)
    if message is None:
        return None
    try:
        body = _tolerant(model, message.data)
    except _NewerSchema as exc:
        # Written by a newer producer than this consumer: not misread, not lost, and recoverable
        # (a re-drive once the consumer is deployed reads it).
        if dead_letter:
            dead_letter_unreadable(message, str(exc), recoverable=True)
            return None
        log.error("dropping event: %s", exc, extra={"event_id": message.event_id})
        return None
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        reason = f"message body does not match {model.__name__}: {_error_summary(errors)}"
        if dead_letter:
            dead_letter_unreadable(message, reason)
            return None
        log.error(
            "dropping event: message body does not match %s",
            model.__name__,
            extra={"event_id": message.event_id, "errors": errors},
        )
        return None
    envelope = message.model_dump(exclude={"data"})
    return PubSubDelivery[model](**envelope, body=body)  # type: ignore[valid-type]


def dead_letter_unreadable(message: PubSubMessage, reason: str, *, recoverable: bool = False) -> None:
    """Acknowledge a message this consumer cannot read, but never unread: published to its
    topic's dead-letter topic with ``reason`` (raising if that fails, so Pub/Sub delivers it again),
    where the dead-letter store keeps it and pages (or, ``recoverable``, may re-drive it). Without
    a topic (not a push of ours) it can only be logged."""
    if not message.topic:
        log.error(
            "dropping unreadable event of no topic: %s", reason[:500], extra={"event_id": message.event_id}
        )
        return
    from shared.dead_letters import publish_unreadable

    publish_unreadable(
        message.topic,
        message.data,
        message.attributes,
        reason,
        message.publish_time,
        source_message_id=message.message_id,
        recoverable=recoverable,
    )


def _error_summary(errors: list[Any]) -> str:
    """``field: message`` of the first few validation errors (no input values: they may be large)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


class _NewerSchema(ValueError):
    """The message's ``schema_version`` is newer than its model reads."""


def _tolerant(model: type[M], data: bytes) -> M:
    """Validate a message body, ignoring top-level fields this version does not know (a producer
    deployed before its consumers may add fields: producers stay strict, consumers tolerant), and
    refusing one of a newer ``schema_version`` than ``model`` reads (``shared/compat.py``)."""
    try:
        raw = json.loads(data)
    except ValueError:
        return model.model_validate_json(data)  # raises the usual json_invalid error
    if not isinstance(raw, dict):
        return model.model_validate_json(data)
    newer = newer_schema(model, raw)
    if newer:
        raise _NewerSchema(newer)
    unknown = unknown_fields(model, raw) if model.model_config.get("extra") != "allow" else []
    if unknown:
        log.info("ignoring unknown fields", extra={"model": model.__name__, "fields": unknown[:20]})
        return model.model_validate_json(json.dumps(known_fields(model, raw)))
    return model.model_validate_json(data)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return parse_rfc3339(str(value))
