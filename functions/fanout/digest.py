"""The daily digest: every transition fan-out received in one UTC day, by severity and rule, in
one mail (HTML and text) to the digest channels (``routing.yaml`` ``digest.channels``), sent once
per day even when the scheduler fires twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.fanout.channels.base import DeliveryFailed
from functions.fanout.channels.registry import configured
from functions.fanout.delivery import new_retrier
from functions.fanout.models import summary_of
from functions.fanout.records import TRANSITIONS, field_filter
from functions.fanout.routes import get_routing
from functions.fanout.settings import get_fanout_settings
from shared.firestore import get_firestore
from shared.idempotency import once
from shared.logging import get_logger
from shared.messages import SEVERITY_ORDER, AlertTransition
from shared.notices import is_personal

log = get_logger("fanout.digest")


class DigestEntry(BaseModel):
    transition: AlertTransition
    outcome: str
    reason: str | None = None

    def summary(self) -> str:
        """The transition's summary; a personal notice (a customer success action, for that
        customer's success manager alone) only by its rule: the team's digest names no account."""
        if is_personal(self.transition):
            return f"{self.transition.rule} (personal notice, sent to its recipient)"
        return summary_of(self.transition)


class Digest(BaseModel):
    day: date
    entries: list[DigestEntry]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for entry in self.entries:
            table.setdefault(entry.transition.severity, Counter())[entry.transition.state] += 1
        return {s: dict(table[s]) for s in sorted(table, key=SEVERITY_ORDER.__getitem__)}

    def by_rule(self) -> list[tuple[str, int, int]]:
        fired: Counter[str] = Counter()
        resolved: Counter[str] = Counter()
        for entry in self.entries:
            (fired if entry.transition.state == "firing" else resolved)[entry.transition.rule] += 1
        rules = sorted(set(fired) | set(resolved), key=lambda r: (-fired[r], r))
        return [(rule, fired[rule], resolved[rule]) for rule in rules]

    def subject(self) -> str:
        fired = sum(1 for e in self.entries if e.transition.state == "firing")
        resolved = len(self.entries) - fired
        return f"ION Ops alert digest {self.day.isoformat()}: {fired} fired, {resolved} resolved"


class DayNotOver(ValueError):
    """A digest asked of a day not over yet (UTC)."""

    def __init__(self, day: date, today: date) -> None:
        super().__init__(
            f"date {day} is not over yet; a digest is of a past day (UTC), at latest "
            f"{today - timedelta(days=1)}."
        )


def day_to_digest(requested: date | None, scheduled_at: datetime, today: date) -> date:
    """The day a digest is of: ``requested``, by default the UTC day before the scheduled time."""
    day = requested or (scheduled_at - timedelta(days=1)).date()
    if day >= today:
        # A digest is sent once per day and channel: one of a day not over yet would be partial
        # and stop the real one. (Found probing the contract: 9999-12-31 was a 500.)
        raise DayNotOver(day, today)
    return day


def collect(day: date) -> Digest:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    query = (
        get_firestore()
        .collection(TRANSITIONS)
        .where(filter=field_filter("received_at", ">=", start))
        .where(filter=field_filter("received_at", "<", start + timedelta(days=1)))
    )
    entries = [
        DigestEntry(
            transition=AlertTransition.model_validate(raw["transition"]),
            outcome=raw.get("outcome", ""),
            reason=raw.get("reason"),
        )
        for raw in (s.to_dict() for s in query.stream())
    ]
    entries.sort(key=lambda e: (e.transition.evaluated_at, e.transition.transition_id))
    return Digest(day=day, entries=entries)


def send_digest(day: date) -> dict[str, Any]:
    """Send the digest of ``day`` to each digest channel, once per day and channel."""
    settings = get_fanout_settings()
    digest = collect(day)
    results: dict[str, Any] = {"day": day.isoformat(), "transitions": len(digest.entries), "channels": {}}
    for name in get_routing().digest.channels:
        with once(f"fanout:digest:{name}", day.isoformat()) as first:
            if not first:
                results["channels"][name] = "duplicate"
                continue
            results["channels"][name] = _send(name, digest, settings)
    return results


def _send(name: str, digest: Digest, settings: Any) -> str:
    from functions.fanout.channels.email import EmailChannel, render

    context = {
        "digest": digest,
        "silences_url": settings.public_url.rstrip("/") + "/v1/silences",
        "dashboard_url": settings.dashboard_url,
    }
    text, html = render("digest", **context)
    if name == "email" and configured("email", settings):
        try:
            EmailChannel(settings).send_mail(
                digest.subject(), text, html, f"digest-{digest.day.isoformat()}", new_retrier(settings)
            )
        except DeliveryFailed as exc:
            log.error("digest mail failed: %s", exc.reason, extra={"day": digest.day.isoformat()})
            raise
        return "delivered"
    from pathlib import Path

    from functions.fanout.channels.log import write_outbox

    log.warning(
        "alert digest: %s", digest.subject(), extra={"instead_of": name, "day": digest.day.isoformat()}
    )
    if settings.outbox_dir:
        write_outbox(
            Path(settings.outbox_dir),
            f"digest-{digest.day.isoformat()}-{name}",
            {"channel": "log", "instead_of": name, "subject": digest.subject(), "text": text},
        )
    return "logged"
