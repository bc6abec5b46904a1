"""The dead-letter store: what Pub/Sub gave up on, kept with its reason until someone looks.

A message reaches a ``<topic>-dead-letter`` topic after its subscription's
``max_delivery_attempts`` (Pub/Sub adds the ``CloudPubSubDeadLetterSource*`` attributes), or
directly from fan-out when a channel kept failing (``alert-deliveries-dead-letter``, with the
reason in the body). Each is stored once under its message id, raises an alert once (a notice on
``alerts``: critical for the alert pipeline's own topics, high otherwise), and can be re-driven:
published again, data and attributes as they were, to the topic it came from.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from functions.deadletters.settings import get_dead_letter_settings
from shared.events import PubSubMessage
from shared.notices import notice_transition, publish_notice

DEAD_LETTERS = "dead_letters"
SUFFIX = "-dead-letter"
PUBSUB_ATTRIBUTES = "CloudPubSubDeadLetterSource"
State = Literal["stored", "redriven"]
ALERT_SOURCE, ALERT_NAME = "deadletters", "dead-letter"
ALERT_RULE = f"{ALERT_SOURCE}-{ALERT_NAME}"


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

    def data(self) -> bytes:
        return base64.b64decode(self.data_base64)


class NotRedrivable(Exception):
    pass


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


def from_message(message: PubSubMessage, now: datetime) -> DeadLetter:
    if not message.topic or not message.topic.endswith(SUFFIX):
        raise ValueError(f"not a dead-letter topic: {message.topic!r}")
    attempts = message.attributes.get(f"{PUBSUB_ATTRIBUTES}DeliveryCount")
    return DeadLetter(
        id=message.message_id,
        topic=source_topic(message.topic),
        dead_letter_topic=message.topic,
        data_base64=base64.b64encode(message.data).decode(),
        size_bytes=len(message.data),
        attributes=message.attributes,
        reason=_reason(message),
        delivery_attempts=int(attempts) if attempts and attempts.isdigit() else None,
        source_subscription=message.attributes.get(f"{PUBSUB_ATTRIBUTES}Subscription"),
        published_at=message.publish_time,
        received_at=now,
    )


def _collection():  # type: ignore[no-untyped-def]
    from shared.firestore import get_firestore

    return get_firestore().collection(DEAD_LETTERS)


def store(letter: DeadLetter) -> DeadLetter:
    """Store once (a redelivery keeps the first copy) and return what is stored."""
    from google.api_core.exceptions import AlreadyExists

    ref = _collection().document(letter.id)
    keep = timedelta(days=get_dead_letter_settings().keep_days)
    try:
        ref.create({**letter.model_dump(mode="python"), "expire_at": letter.received_at + keep})
    except AlreadyExists:
        return DeadLetter.model_validate(ref.get().to_dict())
    return letter


def is_own_alert(letter: DeadLetter) -> bool:
    """A dead-lettered alert about a dead letter: alerting again would feed the loop that
    produced it (fan-out down), so it is stored and logged only."""
    if letter.topic != "alerts":
        return False
    try:
        body = json.loads(letter.data())
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("rule") == ALERT_RULE


def alert(letter: DeadLetter) -> None:
    """Raise the alert for a stored dead letter once (the notice id is the letter's)."""
    if letter.alerted or is_own_alert(letter):
        return
    settings = get_dead_letter_settings()
    severity = "critical" if letter.topic in settings.critical_topics else "high"
    link = f"{settings.public_url.rstrip('/')}/v1/dead-letters/{letter.id}" if settings.public_url else None
    publish_notice(
        notice_transition(
            notice_id=f"dead-letter/{letter.id}",
            source=ALERT_SOURCE,
            name=ALERT_NAME,
            severity=severity,
            summary=f"A message on {letter.topic} was dead-lettered: {letter.reason}",
            at=letter.received_at,
            labels={"topic": letter.topic},
            annotations={
                "dead_letter_id": letter.id,
                "redrive": f"POST /v1/dead-letters/{letter.id}/redrive",
            },
            dashboard_url=link,
        )
    )
    _collection().document(letter.id).update({"alerted": True})


def get(letter_id: str) -> DeadLetter | None:
    snapshot = _collection().document(letter_id).get()
    return DeadLetter.model_validate(snapshot.to_dict()) if snapshot.exists else None


def listing(topic: str | None, state: State | None, limit: int) -> list[DeadLetter]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = _collection()
    if topic:
        query = query.where(filter=FieldFilter("topic", "==", topic))
    if state:
        query = query.where(filter=FieldFilter("state", "==", state))
    letters = [DeadLetter.model_validate(s.to_dict()) for s in query.stream()]
    letters.sort(key=lambda letter: letter.received_at, reverse=True)
    return letters[:limit]


def redrive(letter_id: str, now: datetime, redrivable_topics: set[str]) -> DeadLetter | None:
    """Publish the message again to its topic; None when there is no such letter."""
    from shared.pubsub import publish

    letter = get(letter_id)
    if letter is None:
        return None
    if letter.topic not in redrivable_topics:
        raise NotRedrivable(
            f"Topic {letter.topic} has no subscriber to re-drive to; "
            f"re-drivable topics: {', '.join(sorted(redrivable_topics))}."
        )
    attributes = {k: v for k, v in letter.attributes.items() if not k.startswith(PUBSUB_ATTRIBUTES)}
    attributes["redriven_from"] = letter.id
    message_id = publish(letter.topic, letter.data(), attributes=attributes)
    update = {"state": "redriven", "redriven_at": now, "redrive_message_id": message_id}
    _collection().document(letter.id).update(update)
    return letter.model_copy(update=update)
