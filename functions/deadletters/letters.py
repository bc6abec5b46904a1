"""A dead letter as kept (``DeadLetter``), read from the message Pub/Sub (or fan-out) gave up on:
its source topic, reason, subject and first publish time; whether the pipeline re-drives it by
itself (``planned``) and the summary notice of those it did. Pure: ``store.py`` keeps them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import statistics
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from functions.deadletters.settings import DeadLetterSettings, get_dead_letter_settings
from shared import dead_letters as attrs
from shared.clock import format_rfc3339, parse_rfc3339
from shared.events import PubSubMessage
from shared.messages import AlertTransition
from shared.notices import notice_transition

SUFFIX = "-dead-letter"
PUBSUB_ATTRIBUTES = "CloudPubSubDeadLetterSource"
State = Literal["stored", "redriven"]
ALERT_SOURCE, ALERT_NAME = "deadletters", "dead-letter"
ALERT_RULE = f"{ALERT_SOURCE}-{ALERT_NAME}"
SUMMARY_ITEMS = 10  # delayed messages named in the summary; the rest are counted
LETTER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The customers a letter is about (every ``customer`` label in its message): erasing a customer
# (health's ``DELETE /v1/customers/{id}``) finds its letters by this field and redacts them.
CUSTOMERS_FIELD = "customers"


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    topic: str = Field(description="the topic the message was first published to")
    dead_letter_topic: str
    data_base64: str
    size_bytes: int
    attributes: dict[str, str]
    reason: str
    delivery_attempts: int | None
    source_subscription: str | None
    published_at: AwareDatetime
    received_at: AwareDatetime
    state: State = "stored"
    alerted: bool = False
    redriven_at: AwareDatetime | None = None
    redrive_message_id: str | None = None
    data_parts: int = Field(default=0, description="parts in dead_letter_parts (0: data is inline)")
    # What the message was (a rule and its labels, a channel and its notification), for people.
    subject: str = ""
    redrives: int = Field(default=0, description="re-drives of the message before it failed this time")
    first_published_at: AwareDatetime | None = Field(
        default=None, description="when the message was first published (None: as published_at)"
    )
    recoverable: bool = Field(default=True, description="false: its producer says no retry can help")
    automatic: bool = Field(default=False, description="re-driven by the recovery job, not paged alone")
    recover_after: AwareDatetime | None = Field(
        default=None, description="set while it waits for the recovery job: due from then"
    )
    recovered_at: AwareDatetime | None = None
    awaiting_summary: bool = False
    customers: list[str] = Field(default=[], description="the customers the message is about")
    redacted_at: AwareDatetime | None = Field(
        default=None, description="set when its customer was erased: data, attributes and reason gone"
    )

    def data(self) -> bytes:
        """The message's data, when held inline (``with_data`` reads a large letter's parts)."""
        return base64.b64decode(self.data_base64)

    def first_published(self) -> datetime:
        return self.first_published_at or self.published_at


class NotRedrivable(Exception):
    pass


class DataMissing(LookupError):
    """Part of a large letter's data is gone (its parts expire on their own TTL)."""


class Redacted(Exception):
    """The letter's customer was erased: its data is gone, so there is nothing to re-drive."""


def source_topic(dead_letter_topic: str) -> str:
    return dead_letter_topic.removesuffix(SUFFIX)


def _reason(message: PubSubMessage) -> str:
    if message.attributes.get("reason"):
        return message.attributes["reason"][:500]
    try:
        body = json.loads(message.data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return body["reason"][:500]
    attempts = message.attributes.get(f"{PUBSUB_ATTRIBUTES}DeliveryCount")
    return f"not acknowledged after {attempts} delivery attempts" if attempts else "dead-lettered"


def _source_publish_time(message: PubSubMessage) -> datetime:
    """When Pub/Sub received the message on its source topic, else when it was dead-lettered."""
    value = message.attributes.get(f"{PUBSUB_ATTRIBUTES}TopicPublishTime")
    if value:
        try:
            at = parse_rfc3339(value)
        except (ValueError, TypeError, OverflowError):
            return message.publish_time
        if at.tzinfo is not None:
            return min(at, message.publish_time)
    return message.publish_time


def _subject(topic: str, data: bytes, attributes: dict[str, str]) -> str:
    """A line saying what the message was, when it is one of the alert pipeline's."""
    try:
        body = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""

    def alert_line(alert: Any) -> str:
        if not isinstance(alert, dict):
            return ""
        labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
        where = ", ".join(str(labels[k]) for k in ("service", "region") if labels.get(k))
        return f"{alert.get('rule', '?')} {alert.get('state', '')}".strip() + (f" ({where})" if where else "")

    if topic == "alerts":
        return alert_line(body)[:200]
    if topic == "alert-deliveries":
        notification = body.get("notification") if isinstance(body.get("notification"), dict) else {}
        alerts = notification.get("alerts") if isinstance(notification.get("alerts"), list) else []
        lines = [alert_line(a) for a in alerts[:3]]
        more = f" +{len(alerts) - 3}" if len(alerts) > 3 else ""
        return f"{attributes.get('channel', body.get('channel', '?'))}: {'; '.join(lines)}{more}"[:200]
    return ""


def customers_named(data: bytes) -> list[str]:
    """Every customer the message names in a ``customer`` label (a success notice on ``alerts``,
    a delivery of one given up on ``alert-deliveries``, at any depth), sorted."""
    try:
        body = json.loads(data)
    except ValueError:  # not JSON (an OTLP protobuf batch): no labels to read
        return []
    found: set[str] = set()
    pending: list[Any] = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "customer" and isinstance(item, str):
                    found.add(item)
                else:
                    pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)
    return sorted(found)


def letter_id(message_id: str) -> str:
    """The letter's id: the message id (Pub/Sub's are digits), or a digest of one that could not
    be a document id or a path segment of the API (a ``/``), so that it is stored all the same."""
    if LETTER_ID.fullmatch(message_id):
        return message_id
    return "m" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def keyed_letter_id(dead_letter_topic: str, key: str) -> str:
    """The id of the letter its producer keyed (``letter_key``): the same for every copy of it."""
    return "k" + hashlib.sha256(f"{dead_letter_topic}\x00{key}".encode()).hexdigest()[:40]


def from_message(message: PubSubMessage, now: datetime) -> DeadLetter:
    if not message.topic or not message.topic.endswith(SUFFIX):
        raise ValueError(f"not a dead-letter topic: {message.topic!r}")
    attempts = message.attributes.get(f"{PUBSUB_ATTRIBUTES}DeliveryCount")
    topic = source_topic(message.topic)
    key = message.attributes.get(attrs.LETTER_KEY)
    return DeadLetter(
        id=keyed_letter_id(message.topic, key) if key else letter_id(message.message_id),
        topic=topic,
        dead_letter_topic=message.topic,
        data_base64=base64.b64encode(message.data).decode(),
        size_bytes=len(message.data),
        attributes=message.attributes,
        reason=_reason(message),
        delivery_attempts=int(attempts) if attempts and attempts.isdigit() else None,
        source_subscription=message.attributes.get(f"{PUBSUB_ATTRIBUTES}Subscription"),
        published_at=message.publish_time,
        received_at=now,
        subject=_subject(topic, message.data, message.attributes),
        redrives=attrs.redrives_of(message.attributes),
        first_published_at=attrs.first_published(message.attributes, _source_publish_time(message)),
        recoverable=message.attributes.get(attrs.RECOVERABLE) != "false",
        customers=customers_named(message.data),
    )


def planned(letter: DeadLetter, settings: DeadLetterSettings | None = None) -> DeadLetter:
    """The letter as it is to be stored: waiting for the recovery job when the pipeline can
    recover it by itself (one of its topics, a retry may help, re-drives left, not our own alert),
    due at once the first time and after a doubling backoff once a re-drive has failed."""
    settings = settings or get_dead_letter_settings()
    automatic = (
        letter.topic in settings.recover_topics
        and letter.recoverable
        and letter.redrives < settings.recover_max_redrives
        and not is_own_alert(letter)
    )
    if not automatic:
        return letter
    if letter.redrives == 0:
        due = letter.first_published()  # oldest first, and due now
    else:
        due = letter.received_at + timedelta(
            seconds=settings.recover_backoff_seconds * 2 ** (letter.redrives - 1)
        )
    return letter.model_copy(update={"automatic": True, "recover_after": due})


def is_own_alert(letter: DeadLetter) -> bool:
    """A dead-lettered notice of ours (about a dead letter, a recovery), or a delivery of nothing
    but those: alerting about it or re-driving it by itself would feed the loop that produced it
    (fan-out down), so it is stored and logged only."""
    if letter.topic not in ("alerts", "alert-deliveries"):
        return False
    try:
        body = json.loads(letter.data())
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if letter.topic == "alerts":
        return _ours(body)
    notification = body.get("notification")
    alerts = notification.get("alerts") if isinstance(notification, dict) else None
    return isinstance(alerts, list) and bool(alerts) and all(_ours(a) for a in alerts)


def _ours(alert: Any) -> bool:
    return isinstance(alert, dict) and str(alert.get("rule", "")).startswith(f"{ALERT_SOURCE}-")


class Delayed(BaseModel):
    """A letter re-driven by itself, as the summary tells it."""

    id: str
    topic: str
    subject: str = ""
    first: AwareDatetime
    recovered_at: AwareDatetime

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Delayed:
        first = doc.get("first_published_at") or doc["published_at"]
        return cls(
            id=doc["id"],
            topic=doc.get("topic", "?"),
            subject=doc.get("subject") or "",
            first=first,
            recovered_at=doc.get("recovered_at") or first,
        )

    @property
    def delay(self) -> float:
        return max(0.0, (self.recovered_at - self.first).total_seconds())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def recovery_notice(delayed: list[Delayed]) -> AlertTransition:
    """The summary notice (``high``: the pages themselves went out when re-driven, marked LATE)."""
    delayed = sorted(delayed, key=lambda d: d.first)
    delays = [d.delay for d in delayed]
    by_topic: dict[str, int] = {}
    for d in delayed:
        by_topic[d.topic] = by_topic.get(d.topic, 0) + 1
    topics = ", ".join(f"{topic} {count}" for topic, count in sorted(by_topic.items()))
    items = [
        f"{d.subject or d.topic}: first published {format_rfc3339(d.first)}, "
        f"re-driven {_duration(d.delay)} later"
        for d in delayed[:SUMMARY_ITEMS]
    ]
    if len(delayed) > SUMMARY_ITEMS:
        items.append(f"and {len(delayed) - SUMMARY_ITEMS} more (GET /v1/dead-letters?state=redriven)")
    median = _duration(statistics.median(delays))
    summary = (
        f"The alert pipeline recovered by itself: {len(delayed)} dead-lettered message"
        f"{'s' if len(delayed) != 1 else ''} ({topics}) re-driven once it was healthy again, delayed "
        f"{_duration(min(delays))} to {_duration(max(delays))} (median {median}). " + "; ".join(items)
    )
    ids = sorted(d.id for d in delayed)
    notice = notice_transition(
        notice_id=f"dead-letter-recovery/{hashlib.sha256(chr(0).join(ids).encode()).hexdigest()[:24]}",
        source=ALERT_SOURCE,
        name="recovered",
        severity="high",
        summary=summary[:2900],
        at=max(d.recovered_at for d in delayed),
        annotations={
            "letters": str(len(delayed)),
            "by_topic": topics,
            "max_delay_seconds": f"{max(delays):.0f}",
            "oldest_first_published_at": format_rfc3339(delayed[0].first),
            "dead_letter_ids": ",".join(ids[:50]),
        },
        value=round(max(delays), 1),
    )
    return notice.model_copy(
        update={
            "runbook": [
                "Nothing to re-drive by hand: each delayed page went out when it was re-driven, "
                "marked LATE with its delay.",
                "Find out why the pipeline was down (fan-out's and Firestore's logs around the oldest "
                "first publish time); the letters are under GET /v1/dead-letters?state=redriven.",
            ]
        }
    )
