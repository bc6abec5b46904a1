"""Deliver one notification to every channel of its route, exactly once per channel.

Each channel is claimed with ``once(f"fanout:{channel}", notification_id)``: a redelivered
Pub/Sub message, a redrive by the flush tick, or a second instance handling the same message
finds the channel done and sends nothing. Channels run side by side, so a slow or failing one
never delays the others. A channel that keeps failing (``DeliveryFailed``: not retryable, or out
of attempts or time) is published to the dead-letter topic with the reason and counts as done.
Anything else (Firestore or Pub/Sub unavailable, another instance holding the claim) is raised
after the other channels finish, so Pub/Sub redelivers and only the unfinished channels run again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.registry import build_channel
from functions.fanout.models import Notification
from functions.fanout.records import NOTIFICATIONS
from functions.fanout.settings import FanoutSettings, get_fanout_settings
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.idempotency import once
from shared.logging import get_logger
from shared.pubsub import publish

# "logged_instead": a local run without the channel's settings wrote it to the log and outbox.
Outcome = Literal["delivered", "logged_instead", "dead-lettered", "duplicate"]
log = get_logger("fanout.delivery")


class DeadLetter(BaseModel):
    """What the dead-letter topic receives for a delivery given up."""

    notification_id: str
    channel: str
    reason: str
    attempts: int
    failed_at: datetime
    severity: str
    fingerprints: list[str]
    transition_ids: list[str]
    notification: Notification


def new_retrier(settings: FanoutSettings) -> Retrier:
    return Retrier(
        max_attempts=settings.max_attempts,
        budget_seconds=settings.retry_budget_seconds,
        base_delay=settings.backoff_base_seconds,
        max_delay=settings.backoff_max_seconds,
    )


def deliver_one(name: str, notification: Notification, settings: FanoutSettings) -> Outcome:
    with once(f"fanout:{name}", notification.notification_id) as first:
        if not first:
            return "duplicate"
        channel = build_channel(name, settings)
        retrier = new_retrier(settings)
        record: dict[str, Any]
        outcome: Outcome
        try:
            receipt = channel.send(notification, retrier)
            # The vendor has it: from here no failure of ours may release the claim and resend.
            first.settle()
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
            )
            # If this publish fails the claim is released and the delivery is tried again later.
            publish(
                settings.dead_letter_topic,
                dead,
                attributes={"channel": name, "notification_id": notification.notification_id},
            )
            first.settle()
            outcome = "dead-lettered"
            record = {"status": outcome, "at": utcnow(), "attempts": exc.attempts, "reason": exc.reason}
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
        get_firestore().collection(NOTIFICATIONS).document(notification.notification_id).update(
            {f"deliveries.{name}": record}
        )
        return outcome


def deliver(notification_id: str) -> dict[str, str]:
    """Deliver a stored notification to each of its channels not yet done; raise if any must retry."""
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
        futures = {name: pool.submit(deliver_one, name, notification, settings) for name in channels}
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
