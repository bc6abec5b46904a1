"""Recovery: the alert pipeline's own dead letters re-driven by themselves (the scheduler's
``recover``, every minute), oldest first and bounded per run, then one summary notice once the
outage is over; a letter whose automatic re-drive fails again is announced per topic and hour."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from functions.deadletters.letters import ALERT_SOURCE, DataMissing, DeadLetter, Delayed, recovery_notice
from functions.deadletters.settings import DeadLetterSettings, get_dead_letter_settings
from functions.deadletters.store import alert, letters_collection, redrive_letter, with_data
from shared.logging import get_logger
from shared.notices import notice_transition, publish_notice

log = get_logger("deadletters.recovery")


class Recovery(BaseModel):
    """What one run of the recovery job did."""

    redriven: list[str] = []
    skipped: list[str] = []  # a topic without a subscriber: paged, for an operator
    expired: list[str] = []  # its data's parts expired first: nothing to re-drive; paged
    summary: str | None = None  # the summary notice's id, when one went out


def recover(now: datetime, redrivable_topics: set[str]) -> Recovery:
    """Re-drive the letters due (at most ``recover_batch``, oldest first), then send the summary
    if the outage is over. Safe to run twice at once and to retry: a letter re-driven twice is the
    same numbered re-drive to its consumers, and the summary's notice id is its letters'."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    settings = get_dead_letter_settings()
    due = (
        letters_collection()
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
            _hand_over(letter)
            report.skipped.append(letter.id)
            continue
        try:
            whole = with_data(letter)
        except DataMissing:
            # Firestore's TTL deletes a large letter's parts and the letter apart, within a day:
            # nothing is left to re-drive, and, oldest first, it would stop every later letter.
            _hand_over(letter)
            report.expired.append(letter.id)
            continue
        redrive_letter(whole, now, automatic=True)
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
    if report.skipped or report.expired:
        log.error(
            "dead letters without a subscriber to re-drive to, or whose data expired: paged instead",
            extra={"dead_letter_ids": report.skipped[:50], "expired_dead_letter_ids": report.expired[:50]},
        )
    report.summary = summarize(now, settings)
    return report


def _hand_over(letter: DeadLetter) -> None:
    """Out of the automatic queue, for an operator: paged before it leaves the queue, so a page
    that fails leaves it due for the next run."""
    from google.cloud import firestore

    alert(letter.model_copy(update={"automatic": False, "recover_after": None}))
    letters_collection().document(letter.id).update(
        {"automatic": False, "recover_after": firestore.DELETE_FIELD}
    )


def summarize(now: datetime, settings: DeadLetterSettings) -> str | None:
    """One notice for the letters re-driven by themselves, once none waits any more and none was
    re-driven for ``summary_quiet_seconds``: what was delayed and by how long."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    if list(letters_collection().order_by("recover_after").limit(1).select(["id"]).stream()):
        return None  # the outage is not over: some wait for their (next) re-drive
    fields = ["id", "topic", "subject", "published_at", "first_published_at", "recovered_at", "redrives"]
    waiting_query = letters_collection().where(filter=FieldFilter("awaiting_summary", "==", True))
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
