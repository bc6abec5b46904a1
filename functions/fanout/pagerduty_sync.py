"""PagerDuty told of an acknowledgement or resolve made here (the incidents API, a Slack button):
one Events v2 ``acknowledge`` / ``resolve`` with the incident's ``dedup_key``, or, for an incident
the previous version opened (one PagerDuty incident per alert), one per alert, by fingerprint
(``Incident.pagerduty_keys``).

Nothing is lost and nobody waits on PagerDuty: the request is recorded on the incident in the
transaction that acknowledges or resolves it (a ``PagerDutySync`` in ``pagerduty_sync``), then
tried at once within ``ION_FANOUT_PAGERDUTY_SYNC_INLINE_SECONDS`` (1.5 s: Slack wants its answer
within 3 s), and, if PagerDuty did not take it (slow, down, 5xx), by the flush tick (``sync_due``)
after 1, 2, 4, 8 and then every 15 minutes. It is given up when PagerDuty refuses it (4xx) or after
``ION_FANOUT_PAGERDUTY_SYNC_GIVE_UP_MINUTES`` (an hour), visibly: a
timeline entry ``PagerDuty acknowledge NOT sent``, an ERROR log, and a reply in the incident's
Slack threads saying to do it in PagerDuty. While it waits, the timeline says it is pending.

One sender at a time: an attempt first claims its request on the incident for as long as it may
take and a margin, ``CLAIM_LEASE`` at least (another instance or the tick finding it claimed
leaves it), and its outcome, in the incident's transaction, removes it once sent. Only reads and
writes: the public ``incident_webhooks`` may delete nothing. Its ``key`` (``acknowledge``,
``acknowledge-2`` for an acknowledgement after PagerDuty took the first back, ``resolve``) makes
the request once per incident.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from functions.fanout.incident_record import Change, Incident, PagerDutySync
from functions.fanout.incident_store import get_store
from functions.fanout.incidents import record_notified
from functions.fanout.settings import get_fanout_settings
from shared.clock import utcnow
from shared.logging import get_logger

Action = Literal["acknowledge", "resolve"]
MAX_BACKOFF = timedelta(minutes=15)
# A claim's least lease; an attempt's own time (its deadline, up to the retry budget's 300 s) is
# added to CLAIM_MARGIN when that is longer, so no second sender starts while one still may send.
CLAIM_LEASE = timedelta(minutes=2)
CLAIM_MARGIN = timedelta(seconds=30)
log = get_logger("fanout.incidents")


@dataclass(frozen=True)
class Attempt:
    outcome: Literal["sent", "failed"]
    reason: str = ""
    retryable: bool = True
    # The alerts PagerDuty took it for in this try.
    taken: tuple[str, ...] = ()


def paged(incident: Incident) -> bool:
    """PagerDuty holds incidents for these alerts: its group's route (a label route's channels, or
    its severity's) or an escalation step reached pages."""
    from functions.fanout.escalation import group_route
    from functions.fanout.incident_policy import get_policy

    if "pagerduty" in group_route(incident).channels:
        return True
    steps = get_policy().steps(incident.priority)[: incident.escalation_level]
    return any("pagerduty" in step.channels for step in steps)


def request_sync(incident: Incident, action: Action, now: datetime) -> None:
    """In the transaction that acknowledged or resolved ``incident``: PagerDuty is to be told
    (when it is configured and holds the incident's alerts)."""
    if not get_fanout_settings().pagerduty_routing_key or not incident.fingerprints or not paged(incident):
        return
    times = sum(1 for e in incident.timeline if e.kind == "acknowledged") if action == "acknowledge" else 1
    key = action if times <= 1 else f"{action}-{times}"
    if any(s.key == key for s in incident.pagerduty_sync):
        return
    incident.pagerduty_sync.append(
        PagerDutySync(action=action, key=key, requested_at=now, next_attempt_at=now)
    )
    incident.pagerduty_sync_at = min(s.next_attempt_at for s in incident.pagerduty_sync)


def tell_pagerduty(incident: Incident, action: Action) -> None:
    """After the change committed: its PagerDuty request tried at once, within the inline budget
    (PagerDuty not configured, a local run: the events go to the log and the outbox instead)."""
    settings = get_fanout_settings()
    if not incident.fingerprints or not paged(incident):
        return
    if not settings.pagerduty_routing_key:
        _log_instead(incident, action, settings.outbox_dir)
        return
    sync_incident(incident.id, utcnow(), seconds=settings.pagerduty_sync_inline_seconds, due_only=False)


def sync_due(now: datetime) -> list[str]:
    """The flush tick: every request whose next attempt is due (``<incident>/<key>`` of those sent)."""
    sent: list[str] = []
    seconds = get_fanout_settings().retry_budget_seconds
    for incident in get_store().due_pagerduty_syncs(now):
        try:
            sent += sync_incident(incident.id, now, seconds=seconds, due_only=True)
        except Exception:  # one incident's trouble must not stop the tick
            log.exception("telling PagerDuty of %s failed; the next tick tries again", incident.id)
    return sent


def sync_incident(incident_id: str, now: datetime, *, seconds: float, due_only: bool) -> list[str]:
    incident = get_store().get(incident_id)
    if incident is None:
        return []
    deadline = time.monotonic() + seconds
    sent = []
    for entry in list(incident.pagerduty_sync):
        if due_only and entry.next_attempt_at > now:
            continue
        if not _claim(
            incident.id, entry.key, now, lease=max(CLAIM_LEASE, timedelta(seconds=seconds) + CLAIM_MARGIN)
        ):
            continue  # another instance is sending it: its outcome settles it
        attempt = _attempt(incident, entry, deadline)
        gave_up = _settle(incident.id, entry.key, attempt, incident, now)
        if attempt.outcome == "sent":
            sent.append(f"{incident.id}/{entry.key}")
        elif gave_up:
            _report_given_up(incident.id, gave_up)
    return sent


def _claim(incident_id: str, key: str, now: datetime, *, lease: timedelta = CLAIM_LEASE) -> bool:
    claimed: list[bool] = []

    def mutate(incident: Incident) -> Change:
        claimed.clear()  # a transaction may run this more than once
        entry = next((s for s in incident.pagerduty_sync if s.key == key), None)
        if entry is None or (entry.claimed_until is not None and entry.claimed_until > now):
            return Change(False, "settled or being sent")
        entry.claimed_until = now + lease
        claimed.append(True)
        return Change(True, "claimed")

    get_store().change(incident_id, mutate)
    return bool(claimed)


def _attempt(incident: Incident, entry: PagerDutySync, deadline: float) -> Attempt:
    """One try of each event PagerDuty has not taken yet (one, but for an incident the previous
    version opened: one per alert), each within what is left of ``deadline``. A try cut short
    keeps what PagerDuty took (``taken``), so the next goes on from there: such an incident of 500
    alerts, at PagerDuty's 120 events a minute, is through in a few ticks instead of sending its
    first alerts again every time until the request is given up."""
    from functions.fanout.channels.base import DeliveryError
    from functions.fanout.channels.pagerduty import PagerDutyChannel

    settings = get_fanout_settings()
    taken: list[str] = []
    done = set(entry.taken)
    try:
        for key in incident.pagerduty_keys:
            if key in done:
                continue
            left = min(deadline - time.monotonic(), settings.request_timeout_seconds)
            if left <= 0.05:
                return Attempt("failed", "no time left for PagerDuty to answer", taken=tuple(taken))
            channel = PagerDutyChannel(settings.model_copy(update={"request_timeout_seconds": left}))
            event = {
                "routing_key": settings.pagerduty_routing_key,
                "event_action": entry.action,
                "dedup_key": key,
            }
            channel._post(event)
            taken.append(key)
    except DeliveryError as exc:
        return Attempt("failed", exc.reason, exc.retryable, taken=tuple(taken))
    return Attempt("sent", taken=tuple(taken))


def _settle(incident_id: str, key: str, attempt: Attempt, sent: Incident, now: datetime) -> str | None:
    """The attempt's outcome on the incident (``sent``: as the attempt read it), in its
    transaction; returns the text of a request given up (None otherwise)."""
    given_up: list[str] = []
    give_up_after = timedelta(minutes=get_fanout_settings().pagerduty_sync_give_up_minutes)

    def mutate(incident: Incident) -> Change:
        given_up.clear()  # a transaction may run this more than once
        entry = next((s for s in incident.pagerduty_sync if s.key == key), None)
        if entry is None:
            return Change(False, "settled before")
        action, tries = entry.action, entry.attempts + 1
        entry.taken = list(dict.fromkeys([*entry.taken, *attempt.taken]))
        per_alert = sent.pagerduty_key is None
        alerts = len(sent.pagerduty_keys)
        # Said only when some of the alerts are taken: a request taken for none reads as before.
        part = f" ({len(entry.taken)} of {alerts} alert(s) taken)" if entry.taken and per_alert else ""
        if attempt.outcome == "sent":
            incident.pagerduty_sync.remove(entry)
            after = f" (after {tries} attempts)" if tries > 1 else ""
            what = (
                f"for {alerts} alert(s) (same dedup_key)"
                if per_alert
                else f"(dedup_key {sent.pagerduty_key})"
            )
            text = f"PagerDuty {action} sent {what}{after}"
            record_notified(incident, f"pagerduty:{key}", text, now, by="pagerduty")
        elif not attempt.retryable or now - entry.requested_at >= give_up_after:
            incident.pagerduty_sync.remove(entry)
            text = (
                f"PagerDuty {action} NOT sent after {tries} attempt(s) since "
                f"{entry.requested_at.isoformat()}{part}: {attempt.reason}; {action} it in PagerDuty by hand"
            )
            record_notified(incident, f"pagerduty:{key}", text, now, by="pagerduty")
            given_up.append(text)
        else:
            entry.attempts, entry.last_error, entry.claimed_until = tries, attempt.reason, None
            # A try that got some through was cut short by its time or the rate limit, not
            # refused: the next goes on a minute later instead of backing off.
            wait = timedelta(minutes=1) if attempt.taken else timedelta(minutes=2 ** (tries - 1))
            entry.next_attempt_at = now + min(wait, MAX_BACKOFF)
            until = (entry.requested_at + give_up_after).isoformat()
            text = (
                f"PagerDuty {action} pending{part}: {attempt.reason}; "
                f"the flush tick tries again until {until}"
            )
            record_notified(incident, f"pagerduty:{key}:pending", text, now, by="pagerduty")
        nexts = [s.next_attempt_at for s in incident.pagerduty_sync]
        incident.pagerduty_sync_at = min(nexts) if nexts else None
        return Change(True, attempt.outcome)

    get_store().change(incident_id, mutate)
    return given_up[0] if given_up else None


def _report_given_up(incident_id: str, text: str) -> None:
    from functions.fanout.slack_web import reply_to_incident

    log.error("incident %s: %s", incident_id, text, extra={"incident_id": incident_id})
    reply_to_incident(incident_id, f":warning: {text}.")


def _log_instead(incident: Incident, action: str, outbox_dir: str) -> None:
    """PagerDuty not configured (a local run; deployed it refuses to start): the events it would
    have got go to the log and the outbox, labelled, as the log channel does for notifications."""
    from pathlib import Path

    from functions.fanout.channels.log import write_outbox

    events = [{"event_action": action, "dedup_key": key} for key in incident.pagerduty_keys]
    log.warning(
        "PagerDuty is not configured: its %s is logged instead",
        action,
        extra={"incident_id": incident.id, "events": events},
    )
    if outbox_dir:
        record = {"channel": "log", "instead_of": "pagerduty", "incident_id": incident.id, "events": events}
        write_outbox(Path(outbox_dir), f"{incident.id}-{action}-pagerduty", record)
    text = f"PagerDuty {action} logged instead (PagerDuty not configured) for {len(events)} dedup_key(s)"
    get_store().change(
        incident.id, lambda i: record_notified(i, f"pagerduty:{action}", text, utcnow(), by="log")
    )
