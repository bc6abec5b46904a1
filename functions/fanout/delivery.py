"""Deliver one notification to every channel of its route, exactly once per channel.

Each channel is claimed with ``once(f"fanout:{channel}", notification_id)``: a redelivered
Pub/Sub message, a redrive by the flush tick, or a second instance handling the same message
finds the channel done and sends nothing. Channels run side by side, so a slow or failing one
never delays the others. A channel that keeps failing (``DeliveryFailed``: not retryable, or out
of attempts or time) is published to the dead-letter topic with the reason and counts as done.
Anything else (Firestore or Pub/Sub unavailable, another instance holding the claim) is raised
after the other channels finish, so Pub/Sub redelivers and only the unfinished channels run again.

A dead letter re-driven to ``alert-deliveries`` (``redeliver``) runs its channel again under a
claim of its own per re-drive, with the same journal: what the vendor accepted before is not sent
again, and the same re-drive delivered twice sends once.

Within a channel, every vendor call the vendor accepted is journaled in the notification's record
(``sent.<channel>.<step>``) before anything else is written: a failure after it (the channel's own
Slack thread records, the delivery record) releases the claim, and the retry skips what was sent.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.registry import build_channel
from functions.fanout.models import NEVER_TOO_OLD, Notification, doc_id
from functions.fanout.pagerduty_keys import as_the_group_is_now
from functions.fanout.records import ALERTS, NOTIFICATIONS, AlertRecord
from functions.fanout.settings import FanoutSettings, get_fanout_settings
from shared import dead_letters
from shared.clock import format_rfc3339, utcnow
from shared.compat import Versioned
from shared.events import decode_pubsub
from shared.firestore import get_firestore
from shared.idempotency import once
from shared.logging import get_logger
from shared.pubsub import publish

# "logged_instead": a local run without the channel's settings wrote it to the log and outbox.
# "superseded": a re-drive whose alerts all resolved since (nothing left worth sending).
Outcome = Literal["delivered", "logged_instead", "dead-lettered", "duplicate", "superseded"]
log = get_logger("fanout.delivery")


class DeadLetter(Versioned):
    """What the dead-letter topic receives for a delivery given up (re-driven, maybe months later,
    to whichever version of fan-out runs then: ``shared/compat.py``)."""

    notification_id: str
    channel: str
    reason: str
    attempts: int
    failed_at: datetime
    severity: str
    fingerprints: list[str]
    transition_ids: list[str]
    notification: Notification
    # How many re-drives of this delivery came before it failed this time.
    redrives: int = 0
    retryable: bool = True


class SentJournal:
    """The journal of one channel's delivery, kept in the notification's record: what the vendor
    accepted (``sent.<channel>.<step>``), read once with the record, written step by step."""

    def __init__(self, ref: Any, channel: str, sent: dict[str, Any]) -> None:
        self.ref = ref
        self.channel = channel
        self.sent = dict(sent)

    def accepted(self, step: str) -> dict[str, Any] | None:
        answer = self.sent.get(step)
        return dict(answer) if isinstance(answer, dict) else None

    def record(self, step: str, answer: dict[str, Any]) -> None:
        self.ref.update({f"sent.{self.channel}.{step}": answer})
        self.sent[step] = answer


def new_retrier(settings: FanoutSettings, journal: SentJournal | None = None) -> Retrier:
    return Retrier(
        max_attempts=settings.max_attempts,
        budget_seconds=settings.retry_budget_seconds,
        base_delay=settings.backoff_base_seconds,
        max_delay=settings.backoff_max_seconds,
        journal=journal,
    )


def claim_key(notification_id: str, redrive: int) -> str:
    """The exactly-once key of a channel's delivery: the notification, or its n-th re-drive."""
    return notification_id if redrive == 0 else f"{notification_id}/redrive-{redrive}"


def deliver_one(
    name: str,
    notification: Notification,
    settings: FanoutSettings,
    *,
    redrive: int = 0,
    recorded: bool = True,
) -> Outcome:
    """``recorded``: the notification's record exists to journal in (false only for a re-drive
    of one that has expired)."""
    with once(f"fanout:{name}", claim_key(notification.notification_id, redrive)) as first:
        if not first:
            return "duplicate"
        ref = get_firestore().collection(NOTIFICATIONS).document(notification.notification_id)
        journal = None
        if recorded:
            # Read under the claim: a holder that released it may have journaled meanwhile.
            sent = (ref.get().to_dict() or {}).get("sent") or {}
            journal = SentJournal(ref, name, sent.get(name) or {})
        channel = build_channel(name, settings)
        retrier = new_retrier(settings, journal)
        record: dict[str, Any]
        outcome: Outcome
        try:
            # Whatever fails after a vendor accepted a call (our own writes in the channel or
            # below) releases the claim; the journal keeps the retry from sending it again.
            receipt = channel.send(notification, retrier)
            outcome = "logged_instead" if getattr(channel, "instead_of", None) else "delivered"
            record = {
                "status": outcome,
                "at": utcnow(),
                "attempts": retrier.attempts,
                "receipt": str(receipt)[:1000],
            }
            log.info(
                "%s %s to %s",
                outcome,
                notification.notification_id,
                name,
                extra={
                    "channel": name,
                    "notification_id": notification.notification_id,
                    "attempts": retrier.attempts,
                },
            )
        except DeliveryFailed as exc:
            dead = DeadLetter(
                notification_id=notification.notification_id,
                channel=name,
                reason=exc.reason,
                attempts=exc.attempts,
                failed_at=utcnow(),
                severity=notification.severity,
                fingerprints=[a.fingerprint for a in notification.alerts],
                transition_ids=[a.transition_id for a in notification.alerts],
                notification=notification,
                redrives=redrive,
                retryable=exc.retryable,
            )
            attributes = {
                "channel": name,
                "notification_id": notification.notification_id,
                dead_letters.REDRIVES: str(redrive),
                dead_letters.FIRST_PUBLISHED: format_rfc3339(notification.created_at),
                # Published again if the claim is lost before it settles: the store keeps one.
                dead_letters.LETTER_KEY: f"delivery/{claim_key(notification.notification_id, redrive)}"
                f"/{name}",
            }
            if not exc.retryable:
                # The vendor refused the call itself: a re-drive would be refused the same way.
                attributes[dead_letters.RECOVERABLE] = "false"
            # If this publish fails the claim is released and the delivery is tried again later.
            publish(settings.dead_letter_topic, dead, attributes=attributes)
            first.settle()
            outcome = "dead-lettered"
            record = {
                "status": outcome,
                "at": utcnow(),
                "attempts": exc.attempts,
                "reason": exc.reason,
            }
            log.error(
                "gave up delivering %s to %s: %s",
                notification.notification_id,
                name,
                exc.reason,
                extra={
                    "channel": name,
                    "notification_id": notification.notification_id,
                    "attempts": exc.attempts,
                },
            )
        if redrive:
            record["redrive"] = redrive
        if recorded:
            ref.update({f"deliveries.{name}": record})
        if notification.incident_id:
            note_on_incident(notification, name, outcome, settings, redrive)
        return outcome


def recipient(name: str, notification: Notification, settings: FanoutSettings) -> str:
    """To whom a channel's notification went, in words for the incident's timeline."""
    if name == "slack":
        where = (
            notification.slack_channel or notification.route_slack_channel or settings.slack_channel or "?"
        )
        return f"Slack channel {where}" + (f" naming {notification.mention}" if notification.mention else "")
    if name == "pagerduty":
        return "PagerDuty (the service of the routing key; its escalation policy pages on-call)"
    if name == "email":
        return f"email to {', '.join(notification.route_email_to) or settings.alert_email_to or '?'}"
    return "the log and outbox"


def note_on_incident(
    notification: Notification, name: str, outcome: str, settings: FanoutSettings, redrive: int
) -> None:
    """Record on the incident's timeline what was sent and to whom (once per delivery). A failure
    here is logged, never raised: the vendor has the notification, and raising would send it again."""
    from functions.fanout.incident_store import get_store
    from functions.fanout.incidents import record_notified

    incident_id = notification.incident_id
    assert incident_id is not None
    text = f"{notification.title()} — {name} {outcome}: {recipient(name, notification, settings)}"
    ref = f"delivery:{claim_key(notification.notification_id, redrive)}:{name}"
    try:
        get_store().change(incident_id, lambda i: record_notified(i, ref, text, utcnow(), by=name))
    except Exception:
        log.exception(
            "could not record the %s delivery of %s on incident %s",
            name,
            notification.notification_id,
            incident_id,
            extra={"incident_id": incident_id, "channel": name},
        )


def deliver(notification_id: str, *, late: bool = False) -> dict[str, str]:
    """Deliver a stored notification to each of its channels not yet done; raise if any must retry.
    ``late``: an unfinished one taken up again, whose PagerDuty event counts the group as it is now."""
    settings = get_fanout_settings()
    ref = get_firestore().collection(NOTIFICATIONS).document(notification_id)
    stored = ref.get().to_dict()
    if stored is None:
        raise LookupError(f"notification {notification_id} is not stored")
    notification = Notification.model_validate(stored["notification"])
    channels: list[str] = list(stored["channels"])
    if not notification.alerts or not channels:
        ref.update({"complete": True})
        return {}
    outcomes: dict[str, str] = {}
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(channels), thread_name_prefix="fanout") as pool:
        futures = {
            name: pool.submit(deliver_one, name, as_of(name, notification, late=late), settings)
            for name in channels
        }
        for name, future in futures.items():
            try:
                outcomes[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other channels
                outcomes[name] = f"retry: {type(exc).__name__}"
                errors.append(exc)
    if errors:
        log.warning(
            "notification %s not finished; raising so it is retried",
            notification_id,
            extra={"outcomes": outcomes},
        )
        raise errors[0]
    ref.update({"complete": True})
    return outcomes


def take_redrive_event(event: Any) -> None:
    """A dead-lettered delivery re-driven to ``alert-deliveries`` (by the dead-letter store)."""
    delivery = decode_pubsub(event, DeadLetter, max_age=NEVER_TOO_OLD, dead_letter=True)
    if delivery is None:
        return
    # The store numbers each re-drive; the same number twice (Pub/Sub redelivering, a second
    # re-drive of the same letter) is the same delivery and sends once.
    redrive = dead_letters.redrives_of(delivery.attributes) or delivery.body.redrives + 1
    redeliver(delivery.body, redrive)


def redeliver(letter: DeadLetter, redrive: int) -> Outcome:
    """A dead-lettered delivery re-driven (its ``redrive``-th time) to its channel, once: a firing
    alert that has resolved since is left out (PagerDuty would open an incident its resolve
    already closed), and what the vendor accepted before is not sent again."""
    settings = get_fanout_settings()
    ref = get_firestore().collection(NOTIFICATIONS).document(letter.notification_id)
    stored = ref.get().to_dict()
    if stored is None:
        # Expired (kept 30 days): the letter carries the notification; no journal to consult.
        log.warning(
            "re-driving %s to %s without its record",
            letter.notification_id,
            letter.channel,
            extra={"notification_id": letter.notification_id, "channel": letter.channel},
        )
    notification = Notification.model_validate(stored["notification"]) if stored else letter.notification
    current = still_current(notification)
    if not current.alerts:
        log.info(
            "re-drive of %s to %s: every alert resolved since; nothing to send",
            letter.notification_id,
            letter.channel,
            extra={"notification_id": letter.notification_id, "channel": letter.channel},
        )
        return "superseded"
    current = as_of(letter.channel, current, late=True)
    outcome = deliver_one(letter.channel, current, settings, redrive=redrive, recorded=stored is not None)
    log.info(
        "re-drive %d of %s to %s: %s",
        redrive,
        letter.notification_id,
        letter.channel,
        outcome,
        extra={"notification_id": letter.notification_id, "channel": letter.channel, "redrive": redrive},
    )
    return outcome


def as_of(channel: str, notification: Notification, *, late: bool) -> Notification:
    """What a channel is given of a notification delivered ``late`` (re-driven, or taken up again
    unfinished): PagerDuty the group as it is now (a stale trigger would reopen its incident)."""
    return as_the_group_is_now(notification) if late and channel == "pagerduty" else notification


def still_current(notification: Notification) -> Notification:
    """The notification without the firing alerts that have resolved since it was made."""
    firing = [a for a in notification.alerts if a.state == "firing"]
    if not firing:
        return notification
    client = get_firestore()
    snaps = client.get_all([client.collection(ALERTS).document(doc_id(a.fingerprint)) for a in firing])
    records = {r.fingerprint: r for r in (AlertRecord.model_validate(s.to_dict()) for s in snaps if s.exists)}
    kept = []
    for alert in notification.alerts:
        record = records.get(alert.fingerprint)
        resolved_since = (
            alert.state == "firing"
            and record is not None
            and record.state == "resolved"
            and record.latest.evaluated_at >= alert.evaluated_at
        )
        if not resolved_since:
            kept.append(alert)
    return notification.model_copy(update={"alerts": kept})
