"""The dead-letter store: what Pub/Sub gave up on, kept with its reason until someone looks.

A message reaches a ``<topic>-dead-letter`` topic after its subscription's
``max_delivery_attempts`` (Pub/Sub adds the ``CloudPubSubDeadLetterSource*`` attributes), or
directly from fan-out when a channel kept failing (``alert-deliveries-dead-letter``, with the
reason in the body). Each is stored once under its message id, raises an alert once (a notice on
``alerts``: critical for the alert pipeline's own topics, high otherwise), and can be re-driven:
published again, data and attributes as they were, to the topic it came from.

A message's data is kept in its letter (base64) up to ``INLINE_BASE64`` characters; a larger one
(Pub/Sub carries up to 10 MB, Firestore a field of at most 1 MiB) is kept raw in parts of
``PART_BYTES`` in ``dead_letter_parts``, written before the letter, so a stored letter always has
all of its data. Listing reads the newest letters without their data, a page at a time.
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
PARTS = "dead_letter_parts"
INLINE_BASE64 = 700_000  # characters; the rest of a letter is at most ~110 KB (attributes, reason)
PART_BYTES = 1_000_000  # under Firestore's 1,048,487 bytes for one field
PARTS_PER_COMMIT = 8  # a commit carries at most 10 MiB
LIST_PAGE = 200
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
    data_parts: int = Field(default=0, description="parts in dead_letter_parts (0: data is inline)")

    def data(self) -> bytes:
        """The message's data, when held inline (``with_data`` reads a large letter's parts)."""
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


def _part_id(letter_id: str, index: int) -> str:
    return f"{letter_id}:{index:04d}"


def store(letter: DeadLetter) -> DeadLetter:
    """Store once (a redelivery keeps the first copy) and return what is stored (with its data)."""
    from google.api_core.exceptions import AlreadyExists

    from shared.firestore import get_firestore

    ref = _collection().document(letter.id)
    expire_at = letter.received_at + timedelta(days=get_dead_letter_settings().keep_days)
    doc = letter.model_dump(mode="python")
    if len(letter.data_base64) > INLINE_BASE64:
        existing = ref.get()
        if existing.exists:  # a redelivery: one read, not its parts written again
            return with_data(DeadLetter.model_validate(existing.to_dict()))
        data = letter.data()
        parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
        client = get_firestore()
        for first in range(0, len(parts), PARTS_PER_COMMIT):
            batch = client.batch()
            for index in range(first, min(first + PARTS_PER_COMMIT, len(parts))):
                batch.set(
                    client.collection(PARTS).document(_part_id(letter.id, index)),
                    {"letter": letter.id, "index": index, "data": parts[index], "expire_at": expire_at},
                )
            batch.commit()
        doc.update(data_base64="", data_parts=len(parts))
    try:
        ref.create({**doc, "expire_at": expire_at})
    except AlreadyExists:
        return with_data(DeadLetter.model_validate(ref.get().to_dict()))
    return letter


def with_data(letter: DeadLetter) -> DeadLetter:
    """The letter with its data inline (a large one's parts read back)."""
    if not letter.data_parts:
        return letter
    from shared.firestore import get_firestore

    client = get_firestore()
    refs = [client.collection(PARTS).document(_part_id(letter.id, i)) for i in range(letter.data_parts)]
    found = {snap.id: (snap.to_dict() or {}).get("data", b"") for snap in client.get_all(refs) if snap.exists}
    missing = [ref.id for ref in refs if ref.id not in found]
    if missing:
        raise LookupError(f"dead letter {letter.id}: parts {', '.join(missing)} are missing")
    data = b"".join(found[ref.id] for ref in refs)
    return letter.model_copy(update={"data_base64": base64.b64encode(data).decode()})


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
    return with_data(DeadLetter.model_validate(snapshot.to_dict())) if snapshot.exists else None


def listing(topic: str | None, state: State | None, limit: int) -> list[DeadLetter]:
    """The newest ``limit`` letters (of ``topic``, in ``state``), without their data. Read newest
    first a page at a time and filtered here: no composite index to deploy, and without filters
    exactly ``limit`` documents are read."""
    from google.cloud import firestore

    summary = [name for name in DeadLetter.model_fields if name != "data_base64"]
    newest = _collection().order_by("received_at", direction=firestore.Query.DESCENDING).select(summary)
    page_size = limit if not (topic or state) else max(limit, LIST_PAGE)
    found: list[DeadLetter] = []
    after = None
    while len(found) < limit:
        page = list((newest.start_after(after) if after is not None else newest).limit(page_size).stream())
        for snap in page:
            doc = snap.to_dict() or {}
            if (topic is None or doc.get("topic") == topic) and (state is None or doc.get("state") == state):
                found.append(DeadLetter.model_validate({**doc, "data_base64": ""}))
        if len(page) < page_size:
            break
        after = page[-1]
    return found[:limit]


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
