"""The dead-letter store: what Pub/Sub gave up on, kept with its reason until someone looks.

A message reaches a ``<topic>-dead-letter`` topic after its subscription's
``max_delivery_attempts`` (Pub/Sub adds the ``CloudPubSubDeadLetterSource*`` attributes), or
directly from fan-out when a channel kept failing (``alert-deliveries-dead-letter``, with the
reason in the body). Each is stored once under its message id, raises an alert once (a notice on
``alerts``: critical for the alert pipeline's own topics, high otherwise), and can be re-driven:
published again, data and attributes as they were, to the topic it came from.

The alert pipeline's own letters (``ION_DEAD_LETTERS_RECOVER_TOPICS``: ``alerts``,
``alert-deliveries``) page nobody one by one: they wait (``recover_after``) for the recovery job
(``recover``, every minute), which re-drives them oldest first, a bounded batch per run, and once
nothing is left to re-drive, sends one summary of what was delayed and by how long. A message whose
re-drive failed again waits longer each time (backoff) and, after ``recover_max_redrives``, pages on
its own; so does one its producer says no retry can help (``recoverable: false``).

A message's data is kept in its letter (base64) up to ``INLINE_BASE64`` characters; a larger one
(Pub/Sub carries up to 10 MB, Firestore a field of at most 1 MiB) is kept raw in parts of
``PART_BYTES`` in ``dead_letter_parts``, written before the letter, so a stored letter always has
all of its data. Listing reads the newest letters without their data, a page at a time.
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
from shared.logging import get_logger
from shared.messages import AlertTransition
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
SUMMARY_ITEMS = 10  # delayed messages named in the summary; the rest are counted
LETTER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
log = get_logger("deadletters.store")


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

    def data(self) -> bytes:
        """The message's data, when held inline (``with_data`` reads a large letter's parts)."""
        return base64.b64decode(self.data_base64)

    def first_published(self) -> datetime:
        return self.first_published_at or self.published_at


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


def letter_id(message_id: str) -> str:
    """The letter's id: the message id (Pub/Sub's are digits), or a digest of one that could not
    be a document id or a path segment of the API (a ``/``), so that it is stored all the same."""
    if LETTER_ID.fullmatch(message_id):
        return message_id
    return "m" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def from_message(message: PubSubMessage, now: datetime) -> DeadLetter:
    if not message.topic or not message.topic.endswith(SUFFIX):
        raise ValueError(f"not a dead-letter topic: {message.topic!r}")
    attempts = message.attributes.get(f"{PUBSUB_ATTRIBUTES}DeliveryCount")
    topic = source_topic(message.topic)
    return DeadLetter(
        id=letter_id(message.message_id),
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


def alert(letter: DeadLetter) -> None:
    """Raise the alert for a stored dead letter once (the notice id is the letter's)."""
    if letter.alerted or is_own_alert(letter):
        return
    settings = get_dead_letter_settings()
    severity = "critical" if letter.topic in settings.critical_topics else "high"
    link = f"{settings.public_url.rstrip('/')}/v1/dead-letters/{letter.id}" if settings.public_url else None
    gave_up = (
        f" (still failing after {letter.redrives} automatic re-drives)"
        if letter.redrives and letter.topic in settings.recover_topics
        else ""
    )
    what = f" ({letter.subject})" if letter.subject else ""
    publish_notice(
        notice_transition(
            notice_id=f"dead-letter/{letter.id}",
            source=ALERT_SOURCE,
            name=ALERT_NAME,
            severity=severity,
            summary=f"A message on {letter.topic}{what} was dead-lettered{gave_up}: {letter.reason}",
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
    letter = get(letter_id)
    if letter is None:
        return None
    if letter.topic not in redrivable_topics:
        raise NotRedrivable(
            f"Topic {letter.topic} has no subscriber to re-drive to; "
            f"re-drivable topics: {', '.join(sorted(redrivable_topics))}."
        )
    return _redrive(letter, now, automatic=False)


def _redrive(letter: DeadLetter, now: datetime, *, automatic: bool) -> DeadLetter:
    """Publish the letter's message again, data and attributes as they were, numbered as the next
    re-drive of that message (its consumers do each numbered re-drive once) and keeping when it
    was first published; then mark the letter. A crash between the two re-drives it again later,
    which its consumers, idempotent, take as the same re-drive."""
    from google.cloud import firestore

    from shared.pubsub import publish

    attributes = {
        k: v
        for k, v in letter.attributes.items()
        if not k.startswith(PUBSUB_ATTRIBUTES) and k not in attrs.REDRIVE_OWNED
    }
    attributes[attrs.REDRIVEN_FROM] = letter.id
    attributes[attrs.REDRIVES] = str(letter.redrives + 1)
    attributes[attrs.FIRST_PUBLISHED] = format_rfc3339(letter.first_published())
    message_id = publish(letter.topic, letter.data(), attributes=attributes)
    update: dict[str, Any] = {"state": "redriven", "redriven_at": now, "redrive_message_id": message_id}
    if automatic:
        update.update(recovered_at=now, awaiting_summary=True)
    _collection().document(letter.id).update({**update, "recover_after": firestore.DELETE_FIELD})
    return letter.model_copy(update={**update, "recover_after": None})


# --- recovery: the alert pipeline's letters re-driven by themselves ----------------------------


class Recovery(BaseModel):
    """What one run of the recovery job did."""

    redriven: list[str] = []
    skipped: list[str] = []  # a topic without a subscriber: paged, for an operator
    summary: str | None = None  # the summary notice's id, when one went out


def recover(now: datetime, redrivable_topics: set[str]) -> Recovery:
    """Re-drive the letters due (at most ``recover_batch``, oldest first), then send the summary
    if the outage is over. Safe to run twice at once and to retry: a letter re-driven twice is the
    same numbered re-drive to its consumers, and the summary's notice id is its letters'."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    settings = get_dead_letter_settings()
    due = (
        _collection()
        .where(filter=FieldFilter("recover_after", "<=", now))
        .order_by("recover_after")
        .limit(settings.recover_batch)
        .stream()
    )
    letters = sorted(
        (DeadLetter.model_validate(s.to_dict()) for s in due), key=lambda letter: letter.first_published()
    )
    report = Recovery()
    for letter in letters:
        if letter.topic not in redrivable_topics:
            # Nothing to re-drive it to (its subscriber retired): it needs hands, so it pages.
            _collection().document(letter.id).update(
                {"automatic": False, "recover_after": firestore.DELETE_FIELD}
            )
            alert(letter.model_copy(update={"automatic": False, "recover_after": None}))
            report.skipped.append(letter.id)
            continue
        _redrive(with_data(letter), now, automatic=True)
        report.redriven.append(letter.id)
        log.info(
            "re-drove dead letter %s to %s by itself",
            letter.id,
            letter.topic,
            extra={
                "dead_letter_id": letter.id,
                "topic": letter.topic,
                "redrives": letter.redrives + 1,
                "delay_seconds": round((now - letter.first_published()).total_seconds(), 1),
            },
        )
    if report.skipped:
        log.error(
            "dead letters of topics without a subscriber cannot be re-driven: paged instead",
            extra={"dead_letter_ids": report.skipped[:50]},
        )
    report.summary = summarize(now, settings)
    return report


def summarize(now: datetime, settings: DeadLetterSettings) -> str | None:
    """One notice for the letters re-driven by themselves, once none waits any more and none was
    re-driven for ``summary_quiet_seconds``: what was delayed and by how long."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    if list(_collection().order_by("recover_after").limit(1).select(["id"]).stream()):
        return None  # the outage is not over: some wait for their (next) re-drive
    fields = ["id", "topic", "subject", "published_at", "first_published_at", "recovered_at", "redrives"]
    waiting_query = _collection().where(filter=FieldFilter("awaiting_summary", "==", True))
    waiting = list(waiting_query.select(fields).limit(1000).stream())
    if not waiting:
        return None
    letters = [Delayed.of(snap.to_dict() or {}) for snap in waiting]
    if max(d.recovered_at for d in letters) > now - timedelta(seconds=settings.summary_quiet_seconds):
        return None
    notice = recovery_notice(letters)
    publish_notice(notice)
    # Marked after the publish: a failure here sends the same notice (same id) next run.
    from shared.firestore import get_firestore

    for start in range(0, len(waiting), 400):
        batch = get_firestore().batch()
        for snap in waiting[start : start + 400]:
            batch.update(snap.reference, {"awaiting_summary": False})
        batch.commit()
    log.warning(
        "sent the summary of %d dead letters re-driven by themselves",
        len(letters),
        extra={"notice_transition_id": notice.transition_id, "letters": len(letters)},
    )
    return notice.transition_id


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


def alert_retrying(letter: DeadLetter) -> None:
    """A message whose automatic re-drive failed again: one notice per topic and hour (its id),
    so a vendor down for long is known while its letters are still being re-driven."""
    if not letter.automatic or letter.redrives == 0:
        return
    settings = get_dead_letter_settings()
    hour = letter.received_at.strftime("%Y-%m-%dT%H")
    what = f" ({letter.subject})" if letter.subject else ""
    publish_notice(
        notice_transition(
            notice_id=f"dead-letter-retrying/{letter.topic}/{hour}",
            source=ALERT_SOURCE,
            name="redrive-failing",
            severity="critical" if letter.topic in settings.critical_topics else "high",
            summary=(
                f"Re-driving dead letters of {letter.topic} by themselves is failing{what}: "
                f"{letter.reason}. They are re-driven again with backoff and each pages on its own "
                f"after {settings.recover_max_redrives} re-drives."
            ),
            at=letter.received_at,
            labels={"topic": letter.topic},
            annotations={"dead_letter_id": letter.id, "redrives": str(letter.redrives)},
        )
    )
