"""Erasing a customer from the dead-letter store: a success notice about it (on ``alerts``) or its
delivery given up (on ``alert-deliveries``) holds its name and its success manager's contact, and
stays in ``dead_letters`` until its TTL. Knows nothing of HTTP.

Redacted, not deleted: on-call keeps that a letter existed, its topic, when it was published and
received, its size, its state, its channel and re-drive count (what a dead-letter summary or an
outage review reads); the message itself (data, a large letter's parts in ``dead_letter_parts``),
its attributes other than those and its reason (a vendor's refusal may quote the address) go. A
redacted letter leaves the automatic re-drive queue and refuses a re-drive (410).

The dead-letter store names the customers a letter is about in ``customers`` (every ``customer``
label of its message), so one ``array_contains`` query finds them; letters stored before it did
(kept ``ION_DEAD_LETTERS_KEEP_DAYS``, 30) are found by reading the notice topics' letters and their
labels, until a scan finds none: the store names every letter's customers since, so none can
appear again (``SCAN_DONE`` records it and later erasures skip the scan; a letter stored by an
instance of the previous version still running at that moment of a deploy would be missed).
Idempotent: a redacted letter names nobody any more.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from shared.clock import utcnow

# The dead-letter store's collections and fields, spelled here: capabilities never import each
# other (a test checks the spellings against the store's own constants).
DEAD_LETTERS = "dead_letters"
PARTS = "dead_letter_parts"
CUSTOMERS_FIELD = "customers"
NOTICE_TOPICS = ["alerts", "alert-deliveries"]
REDACTED_REASON = "redacted: the customer this message was about was erased"
# Attributes that say nothing of the customer: how and when it failed, for on-call.
KEPT_ATTRIBUTES = ("channel", "redrives", "first_published_at", "recoverable")
KEPT_PREFIX = "CloudPubSubDeadLetterSource"
# Health's record that the notice topics hold no letter without ``customers`` any more.
SCAN_DONE = ("health_erasure", "older-dead-letters")


def redact_dead_letters(customer_id: str) -> tuple[int, int]:
    """``(letters redacted, parts deleted)`` of the dead letters about the customer, now."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.firestore import get_firestore

    client = get_firestore()
    letters = client.collection(DEAD_LETTERS)
    redacted = parts = 0
    named = letters.where(filter=FieldFilter(CUSTOMERS_FIELD, "array_contains", customer_id))
    for snap in list(named.stream()):
        parts += _redact(client, snap.reference, snap.to_dict() or {})
        redacted += 1
    done = client.collection(SCAN_DONE[0]).document(SCAN_DONE[1])
    if done.get().exists:
        return redacted, parts
    # Letters stored before the store named their customers: no ``customers`` field. Read whole
    # at once (a projection costs the same read, and each such letter was then read again): the
    # notice topics' letters are small, a large one's data is in its parts.
    older_left = 0
    for snap in letters.where(filter=FieldFilter("topic", "in", NOTICE_TOPICS)).stream():
        letter = snap.to_dict() or {}
        if CUSTOMERS_FIELD in letter:
            continue
        older_left += 1
        if _names(_message(client, snap.id, letter), customer_id):
            parts += _redact(client, snap.reference, letter)
            redacted += 1
            older_left -= 1  # redacted: it names nobody any more
    if not older_left:
        done.set({"found_none_at": utcnow()})
    return redacted, parts


def _redact(client: Any, ref: Any, letter: dict[str, Any]) -> int:
    """Parts first, then the letter: a retry after a failure in between finds the letter again."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    of_letter = client.collection(PARTS).where(filter=FieldFilter("letter", "==", ref.id))
    parts = [snap.reference for snap in of_letter.stream()]
    for start in range(0, len(parts), 400):
        batch = client.batch()
        for part in parts[start : start + 400]:
            batch.delete(part)
        batch.commit()
    attributes = letter.get("attributes") or {}
    kept = {k: v for k, v in attributes.items() if k in KEPT_ATTRIBUTES or k.startswith(KEPT_PREFIX)}
    ref.update(
        {
            "data_base64": "",
            "data_parts": 0,
            "attributes": kept,
            "reason": REDACTED_REASON,
            CUSTOMERS_FIELD: [],
            "redacted_at": utcnow(),
            "automatic": False,
            "recover_after": firestore.DELETE_FIELD,
        }
    )
    return len(parts)


def _message(client: Any, letter_id: str, letter: dict[str, Any]) -> bytes:
    """A letter's data: inline (base64), or a large one's parts in order."""
    count = int(letter.get("data_parts") or 0)
    if not count:
        return base64.b64decode(letter.get("data_base64") or "")
    refs = [client.collection(PARTS).document(f"{letter_id}:{i:04d}") for i in range(count)]
    found = {snap.id: (snap.to_dict() or {}).get("data", b"") for snap in client.get_all(refs) if snap.exists}
    return b"".join(found.get(ref.id, b"") for ref in refs)


def _names(data: bytes, customer_id: str) -> bool:
    """Whether the message names the customer in a ``customer`` label, at any depth."""
    try:
        pending: list[Any] = [json.loads(data)]
    except ValueError:
        return False
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if value.get("customer") == customer_id:
                return True
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
