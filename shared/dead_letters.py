"""What producers and the dead-letter store agree on about a dead letter: the Pub/Sub attributes a
consumer or a re-drive sets, and dead-lettering a message that can never be read.

Pub/Sub moves a message to ``<topic>-dead-letter`` after its subscription's delivery attempts
(adding its own ``CloudPubSubDeadLetterSource*`` attributes); a consumer that can tell at once that
no retry will help (a body it cannot read) publishes it there itself, with the reason, and
acknowledges it: nothing is acknowledged unread.
"""

from __future__ import annotations

from datetime import datetime

from shared.clock import format_rfc3339, parse_rfc3339
from shared.logging import get_logger

SUFFIX = "-dead-letter"
# Why it was dead-lettered, when a producer says so (else Pub/Sub's delivery count tells).
REASON = "reason"
# "false": trying again cannot help (an unreadable body, a vendor refusing the call for good), so
# the store pages about it instead of re-driving it by itself.
RECOVERABLE = "recoverable"
# How many times the message was re-driven before it failed again (absent: never).
REDRIVES = "redrives"
# When the message was first published (RFC 3339), kept across re-drives: how late a page is.
FIRST_PUBLISHED = "first_published_at"
# The letter a re-driven message came from.
REDRIVEN_FROM = "redriven_from"
# What makes two dead letters one: a producer that may publish the same one twice (Pub/Sub
# redelivering a message whose ack was lost after it was dead-lettered, a delivery retried after
# its claim was lost) sets the same key, and the store keeps one letter, and pages once, per key.
LETTER_KEY = "letter_key"
# What a re-drive sets afresh (or, for reason, recoverable and the key, drops: the consumer judges
# again, and a re-drive that fails again is a letter of its own).
REDRIVE_OWNED = frozenset({REASON, RECOVERABLE, REDRIVES, FIRST_PUBLISHED, REDRIVEN_FROM, LETTER_KEY})

log = get_logger("dead_letters")


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{SUFFIX}"


def redrives_of(attributes: dict[str, str]) -> int:
    value = attributes.get(REDRIVES, "")
    return int(value) if value.isdigit() else 0


def first_published(attributes: dict[str, str], fallback: datetime) -> datetime:
    """When the message was first published: the attribute a re-drive keeps, else ``fallback``."""
    value = attributes.get(FIRST_PUBLISHED)
    if value:
        try:
            at = parse_rfc3339(value)
        except (ValueError, TypeError, OverflowError):
            return fallback
        if at.tzinfo is not None:
            return min(at, fallback)
    return fallback


def publish_unreadable(
    topic: str,
    data: bytes,
    attributes: dict[str, str],
    reason: str,
    published_at: datetime,
    *,
    source_message_id: str | None = None,
    recoverable: bool = False,
) -> str:
    """Dead-letter a message of ``topic`` its consumer cannot read, with its reason; raises if
    the publish fails (then the message is not acknowledged and Pub/Sub delivers it again).
    ``source_message_id``: its message id, so that the same message dead-lettered again (its
    ack lost) is the same letter. ``recoverable``: a re-drive may read it (a newer producer's
    schema, once its consumer is deployed); else no retry can help and the store pages."""
    from shared.pubsub import publish

    kept = {k: v for k, v in attributes.items() if k not in REDRIVE_OWNED}
    added = {
        REASON: reason[:500],
        RECOVERABLE: "true" if recoverable else "false",
        FIRST_PUBLISHED: format_rfc3339(first_published(attributes, published_at)),
    }
    if redrives_of(attributes):
        # A re-drive that fails again counts: a letter re-driven in vain is paged after a bound
        # (a recoverable one re-driven every minute while its consumer stays old would never be).
        added[REDRIVES] = str(redrives_of(attributes))
    if source_message_id:
        added[LETTER_KEY] = f"unreadable/{source_message_id}"
    message_id = publish(dead_letter_topic(topic), data, attributes={**kept, **added})
    log.error(
        "dead-lettered an unreadable message of %s: %s",
        topic,
        reason[:500],
        extra={"topic": topic, "dead_letter_message_id": message_id},
    )
    return message_id
