"""The dead-letter store: what Pub/Sub gave up on, kept with its reason until someone looks.

A message reaches a ``<topic>-dead-letter`` topic after its subscription's
``max_delivery_attempts`` (Pub/Sub adds the ``CloudPubSubDeadLetterSource*`` attributes), or
directly from fan-out when a channel kept failing (``alert-deliveries-dead-letter``, with the
reason in the body). Each is stored once under its message id (or its producer's
``letter_key``: the same letter published twice is one), raises an alert once (a notice on
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
from datetime import datetime, timedelta
from typing import Any

from functions.deadletters.letters import (
    ALERT_NAME,
    ALERT_SOURCE,
    PUBSUB_ATTRIBUTES,
    DataMissing,
    DeadLetter,
    NotRedrivable,
    Redacted,
    State,
    is_own_alert,
)
from functions.deadletters.settings import get_dead_letter_settings
from shared import dead_letters as attrs
from shared.clock import format_rfc3339
from shared.logging import get_logger
from shared.notices import notice_transition, publish_notice

DEAD_LETTERS = "dead_letters"
PARTS = "dead_letter_parts"
INLINE_BASE64 = 700_000  # characters; the rest of a letter is at most ~110 KB (attributes, reason)
PART_BYTES = 1_000_000  # under Firestore's 1,048,487 bytes for one field
PARTS_PER_COMMIT = 8  # a commit carries at most 10 MiB
LIST_PAGE = 200
MAX_SCANNED = 2_000  # letters a filtered listing reads per request at most (its ``next`` goes on)
log = get_logger("deadletters.store")


def letters_collection():  # type: ignore[no-untyped-def]
    from shared.firestore import get_firestore

    return get_firestore().collection(DEAD_LETTERS)


def _part_id(letter_id: str, index: int) -> str:
    return f"{letter_id}:{index:04d}"


def store(letter: DeadLetter) -> DeadLetter:
    """Store once (a redelivery keeps the first copy) and return what is stored (with its data)."""
    from google.api_core.exceptions import AlreadyExists

    from shared.firestore import get_firestore

    ref = letters_collection().document(letter.id)
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
        raise DataMissing(f"dead letter {letter.id}: parts {', '.join(missing)} are missing")
    data = b"".join(found[ref.id] for ref in refs)
    return letter.model_copy(update={"data_base64": base64.b64encode(data).decode()})


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
    letters_collection().document(letter.id).update({"alerted": True})


def get(letter_id: str) -> DeadLetter | None:
    snapshot = letters_collection().document(letter_id).get()
    return with_data(DeadLetter.model_validate(snapshot.to_dict())) if snapshot.exists else None


def listing(
    topic: str | None, state: State | None, limit: int, after: str | None = None
) -> tuple[list[DeadLetter], str | None]:
    """The newest ``limit`` letters (of ``topic``, in ``state``) older than the letter ``after``,
    without their data, and the ``after`` of the next page (None: no more). Read newest first a
    page at a time and filtered here (no composite index to deploy): without filters exactly
    ``limit`` documents are read, with them at most ``max(limit, MAX_SCANNED)``, so a topic with no
    recent letter among thousands answers in bounded time, saying where to go on. ``LookupError``:
    ``after`` is no letter."""
    from google.cloud import firestore

    summary = [name for name in DeadLetter.model_fields if name != "data_base64"]
    newest = (
        letters_collection().order_by("received_at", direction=firestore.Query.DESCENDING).select(summary)
    )
    position = None
    if after is not None:
        position = letters_collection().document(after).get()
        if not position.exists:
            raise LookupError(after)
    filtered = bool(topic or state)
    budget = max(limit, MAX_SCANNED) if filtered else limit
    found: list[DeadLetter] = []
    scanned = 0
    while scanned < budget:
        size = min(max(limit, LIST_PAGE) if filtered else limit, budget - scanned)
        page = list((newest.start_after(position) if position is not None else newest).limit(size).stream())
        scanned += len(page)
        for snap in page:
            position = snap
            doc = snap.to_dict() or {}
            if (topic is None or doc.get("topic") == topic) and (state is None or doc.get("state") == state):
                found.append(DeadLetter.model_validate({**doc, "data_base64": ""}))
                if len(found) == limit:
                    return found, snap.id  # more may follow it
        if len(page) < size:
            return found, None  # the oldest letter was read
    return found, position.id if position is not None else None  # the budget ran out


def redrive(letter_id: str, now: datetime, redrivable_topics: set[str]) -> DeadLetter | None:
    """Publish the message again to its topic; None when there is no such letter."""
    letter = get(letter_id)
    if letter is None:
        return None
    if letter.redacted_at is not None:
        raise Redacted(
            f"Dead letter {letter_id} was redacted when the customer it was about was erased "
            f"({format_rfc3339(letter.redacted_at)}): its message is gone, nothing to re-drive."
        )
    if letter.topic not in redrivable_topics:
        raise NotRedrivable(
            f"Topic {letter.topic} has no subscriber to re-drive to; "
            f"re-drivable topics: {', '.join(sorted(redrivable_topics))}."
        )
    return redrive_letter(letter, now, automatic=False)


def redrive_letter(letter: DeadLetter, now: datetime, *, automatic: bool) -> DeadLetter:
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
    letters_collection().document(letter.id).update({**update, "recover_after": firestore.DELETE_FIELD})
    return letter.model_copy(update={**update, "recover_after": None})
