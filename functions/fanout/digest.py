"""The daily digest: every transition fan-out received in one UTC day, by severity and rule, in
one mail (HTML and text) to the digest channels (``routing.yaml`` ``digest.channels``), sent once
per day even when the scheduler fires twice. The counts are the whole day's; the rules and the
transitions listed are capped (a storm day would make a mail of megabytes), each capped section
saying how many it leaves out and where the whole list is."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.fanout.channels.base import DeliveryFailed
from functions.fanout.channels.registry import configured
from functions.fanout.delivery import new_retrier
from functions.fanout.models import summary_of
from functions.fanout.records import KEEP, TRANSITIONS, field_filter
from functions.fanout.routes import get_routing
from functions.fanout.settings import get_fanout_settings
from shared.firestore import get_firestore
from shared.idempotency import once
from shared.logging import get_logger
from shared.messages import SEVERITY_ORDER, AlertTransition
from shared.notices import is_personal

log = get_logger("fanout.digest")


# A storm day made a digest of megabytes: each section lists this many rows at most and says how
# many it leaves out; the counts stay those of the whole day.
MAX_RULES_LISTED = 50
MAX_TRANSITIONS_LISTED = 200
MAX_SUMMARY = 300


class DigestEntry(BaseModel):
    transition: AlertTransition
    outcome: str
    reason: str | None = None

    def summary(self) -> str:
        """The transition's summary (clipped); a personal notice (a customer success action, for
        that customer's success manager alone) only by its rule: the team's digest names no account."""
        if is_personal(self.transition):
            return f"{self.transition.rule} (personal notice, sent to its recipient)"
        return _clip(summary_of(self.transition))

    def why(self) -> str:
        return _clip(self.reason or "")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


class RuleRow(BaseModel):
    rule: str
    fired: int
    resolved: int


class Digest(BaseModel):
    """One day's transitions: counted in full, listed up to the caps (``entries``: the listed
    ones, in time order; the most severe are the ones kept)."""

    day: date
    total: int
    fired: int
    by_severity: dict[str, dict[str, int]]
    rules: list[RuleRow]
    entries: list[DigestEntry]
    # Where the whole list is, said under each capped section.
    full_list: str = ""

    def counts(self) -> dict[str, dict[str, int]]:
        return self.by_severity

    def by_rule(self) -> list[tuple[str, int, int]]:
        """The rules listed: most fired first, at most ``MAX_RULES_LISTED``."""
        return [(r.rule, r.fired, r.resolved) for r in self.rules[:MAX_RULES_LISTED]]

    def rules_left_out(self) -> tuple[int, int, int]:
        """(rules, fired, resolved) of the rules the digest does not list."""
        rest = self.rules[MAX_RULES_LISTED:]
        return len(rest), sum(r.fired for r in rest), sum(r.resolved for r in rest)

    def transitions_left_out(self) -> dict[str, int]:
        """The transitions not listed, by severity (most severe first)."""
        listed = Counter(e.transition.severity for e in self.entries)
        left = {s: sum(c.values()) - listed[s] for s, c in self.by_severity.items()}
        return {s: n for s, n in left.items() if n}

    def subject(self) -> str:
        resolved = self.total - self.fired
        return f"ION Ops alert digest {self.day.isoformat()}: {self.fired} fired, {resolved} resolved"


def build_digest(day: date, entries: Iterable[DigestEntry], full_list: str = "") -> Digest:
    """The digest of ``entries``, read once: all counted, and the ``MAX_TRANSITIONS_LISTED`` most
    severe (the earliest within a severity) kept, so a storm day costs no more memory."""
    table: dict[str, Counter[str]] = {}
    fired: Counter[str] = Counter()
    resolved: Counter[str] = Counter()

    def counted() -> Iterator[DigestEntry]:
        for entry in entries:
            table.setdefault(entry.transition.severity, Counter())[entry.transition.state] += 1
            (fired if entry.transition.state == "firing" else resolved)[entry.transition.rule] += 1
            yield entry

    def severe_first(entry: DigestEntry) -> tuple[int, datetime, str]:
        t = entry.transition
        return SEVERITY_ORDER[t.severity], t.evaluated_at, t.transition_id

    kept = heapq.nsmallest(MAX_TRANSITIONS_LISTED, counted(), key=severe_first)
    names = sorted(set(fired) | set(resolved), key=lambda r: (-fired[r], r))
    return Digest(
        day=day,
        total=fired.total() + resolved.total(),
        fired=fired.total(),
        by_severity={s: dict(table[s]) for s in sorted(table, key=SEVERITY_ORDER.__getitem__)},
        rules=[RuleRow(rule=r, fired=fired[r], resolved=resolved[r]) for r in names],
        entries=sorted(kept, key=lambda e: (e.transition.evaluated_at, e.transition.transition_id)),
        full_list=full_list,
    )


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
    entries = (
        DigestEntry(
            transition=AlertTransition.model_validate(raw["transition"]),
            outcome=raw.get("outcome", ""),
            reason=raw.get("reason"),
        )
        for raw in (s.to_dict() for s in query.stream())
    )
    return build_digest(day, entries, full_list=full_list_of(day))


def full_list_of(day: date) -> str:
    """Where the day's every transition is: the transition log's route, and the incidents since."""
    base = get_fanout_settings().public_url.rstrip("/")
    since = f"{day.isoformat()}T00:00:00Z"
    return (
        f"every transition of the day: {base}/v1/transitions?since={since} (page by page, kept "
        f"{KEEP.days} days); the incidents opened since: {base}/v1/incidents?since={since}"
    )


def send_digest(day: date) -> dict[str, Any]:
    """Send the digest of ``day`` to each digest channel, once per day and channel."""
    settings = get_fanout_settings()
    digest = collect(day)
    results: dict[str, Any] = {"day": day.isoformat(), "transitions": digest.total, "channels": {}}
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
