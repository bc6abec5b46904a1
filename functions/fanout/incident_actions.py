"""What people do to an incident, wherever they do it (the operator API, a Slack button, a
PagerDuty webhook): acknowledge, resolve, add a note, silence its alerts for an hour. Each runs
the domain change in the store's transaction, then tells the other side: an acknowledgement or
resolve made here (API or Slack) is sent to PagerDuty as an Events v2 ``acknowledge`` /
``resolve`` with the alerts' ``dedup_key``s, once per incident and action; one that came from
PagerDuty is not sent back. One made elsewhere than Slack updates the incident's Slack messages
(a Slack button updates its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from functions.fanout.incident_policy import get_policy
from functions.fanout.incident_record import Change, Incident
from functions.fanout.incident_store import get_store
from functions.fanout.incidents import acknowledge, add_note, record_notified, resolve
from shared.clock import utcnow
from shared.logging import get_logger

Source = Literal["api", "slack", "pagerduty"]
SILENCE_FOR = timedelta(hours=1)
log = get_logger("fanout.incidents")


class NoSuchIncident(LookupError):
    pass


@dataclass(frozen=True)
class Outcome:
    incident: Incident
    change: Change


def _apply(incident_id: str, mutate: object) -> Outcome:
    found = get_store().change(incident_id, mutate)  # type: ignore[arg-type]
    if found is None:
        raise NoSuchIncident(incident_id)
    incident, change = found
    return Outcome(incident, change)


def _moment(incident: Incident, at: datetime | None) -> datetime:
    """When an action took place: now, or when the vendor says it did (``at``: a webhook delivered
    late), never in the future nor before the incident's opening or acknowledgement."""
    now = utcnow()
    if at is None:
        return now
    return max(incident.acknowledged_at or incident.opened_at, incident.opened_at, min(at, now))


def acknowledge_incident(incident_id: str, by: str, source: Source, *, at: datetime | None = None) -> Outcome:
    outcome = _apply(incident_id, lambda i: acknowledge(i, by, _moment(i, at), via=_via(source)))
    if outcome.change.changed:
        log.info(
            "incident %s acknowledged by %s",
            incident_id,
            by,
            extra={"incident_id": incident_id, "via": source},
        )
        if source != "pagerduty":
            tell_pagerduty(outcome.incident, "acknowledge")
        if source != "slack":
            _tell_slack(outcome, "acknowledge")
    return outcome


def resolve_incident(
    incident_id: str, by: str, source: Source, note: str | None = None, *, at: datetime | None = None
) -> Outcome:
    policy = get_policy()
    outcome = _apply(
        incident_id, lambda i: resolve(i, by, _moment(i, at), policy, note=note, via=_via(source))
    )
    if outcome.change.changed:
        log.info(
            "incident %s resolved by %s", incident_id, by, extra={"incident_id": incident_id, "via": source}
        )
        if source != "pagerduty":
            tell_pagerduty(outcome.incident, "resolve")
        if source != "slack":
            _tell_slack(outcome, "resolve")
    return outcome


def acknowledge_with_note(incident_id: str, by: str, source: Source, note: str | None) -> Outcome:
    """Acknowledge, and add ``note`` to the timeline if this acknowledged it (not a repeat). The
    answer is the acknowledgement's change, on the incident with its note."""
    outcome = acknowledge_incident(incident_id, by, source)
    if not (note and outcome.change.changed):
        return outcome
    return Outcome(note_incident(incident_id, by, note).incident, outcome.change)


def note_incident(incident_id: str, by: str, text: str, *, ref: str | None = None) -> Outcome:
    return _apply(incident_id, lambda i: add_note(i, by, text, utcnow(), ref=ref))


def silence_incident(incident_id: str, by: str) -> Outcome:
    """Silence the incident's group (its labels) for an hour; the silence is noted on the timeline."""
    from functions.fanout import silences
    from functions.fanout.matchers import Matcher

    incident = get_store().get(incident_id)
    if incident is None:
        raise NoSuchIncident(incident_id)
    now = utcnow()
    matchers = [Matcher(name=k, value=v) for k, v in sorted(incident.labels.items()) if v]
    silence = silences.create(
        silences.SilenceIn(
            matchers=matchers or [Matcher(name="rule", value=incident.rules[0])],
            startsAt=now,
            endsAt=now + SILENCE_FOR,
            createdBy=by[:200],
            comment=f"silenced from incident {incident.id} for 1 h",
        )
    )
    text = f"silenced for 1 h (silence {silence.id}, until {(now + SILENCE_FOR).isoformat()})"
    return _apply(incident_id, lambda i: add_note(i, by, text, now))


def _tell_slack(outcome: Outcome, action: Literal["acknowledge", "resolve"]) -> None:
    """The incident's Slack messages show a change made elsewhere (Slack's own buttons update
    their message themselves)."""
    from functions.fanout.channels.slack_blocks import ACK_ACTION, RESOLVE_ACTION
    from functions.fanout.slack_interactions import echo_elsewhere

    echo_elsewhere(outcome, ACK_ACTION if action == "acknowledge" else RESOLVE_ACTION)


def _via(source: Source) -> str:
    return {"api": "the incidents API", "slack": "Slack", "pagerduty": "PagerDuty"}[source]


def _paged(incident: Incident) -> bool:
    """PagerDuty holds incidents for these alerts: its route or an escalation step reached pages."""
    from functions.fanout.routes import get_routing

    if "pagerduty" in get_routing().route(incident.severity).channels:
        return True
    steps = get_policy().steps(incident.priority)[: incident.escalation_level]
    return any("pagerduty" in step.channels for step in steps)


def tell_pagerduty(incident: Incident, action: Literal["acknowledge", "resolve"]) -> None:
    """Events v2 ``action`` for each alert of the incident (dedup_key = its fingerprint), once per
    incident and action. A failure is recorded on the timeline and logged, not raised: the
    acknowledgement stands here; PagerDuty keeps its own escalation until someone acks there."""
    from functions.fanout.channels.base import DeliveryFailed
    from functions.fanout.channels.pagerduty import PagerDutyChannel
    from functions.fanout.delivery import new_retrier
    from functions.fanout.settings import get_fanout_settings
    from shared.idempotency import once

    settings = get_fanout_settings()
    if not incident.fingerprints or not _paged(incident):
        return
    if not settings.pagerduty_routing_key:
        _log_instead(incident, action, settings.outbox_dir)
        return
    with once("incident:pagerduty", f"{incident.id}/{action}") as first:
        if not first:
            return
        channel = PagerDutyChannel(settings)
        retrier = new_retrier(settings)
        try:
            for fingerprint in incident.fingerprints:
                event = {
                    "routing_key": settings.pagerduty_routing_key,
                    "event_action": action,
                    "dedup_key": fingerprint,
                }
                retrier.call(f"pagerduty {action}", lambda event=event: channel._post(event))
            text = f"PagerDuty {action} sent for {len(incident.fingerprints)} alert(s) (same dedup_key)"
        except DeliveryFailed as exc:
            log.error(
                "PagerDuty %s of %s failed: %s",
                action,
                incident.id,
                exc.reason,
                extra={"incident_id": incident.id},
            )
            text = f"PagerDuty {action} failed: {exc.reason}"
        get_store().change(
            incident.id, lambda i: record_notified(i, f"pagerduty:{action}", text, utcnow(), by="pagerduty")
        )


def _log_instead(incident: Incident, action: str, outbox_dir: str) -> None:
    """PagerDuty not configured (a local run; deployed it refuses to start): the events it would
    have got go to the log and the outbox, labelled, as the log channel does for notifications."""
    from pathlib import Path

    from functions.fanout.channels.log import write_outbox

    events = [{"event_action": action, "dedup_key": fingerprint} for fingerprint in incident.fingerprints]
    log.warning(
        "PagerDuty is not configured: its %s is logged instead",
        action,
        extra={"incident_id": incident.id, "events": events},
    )
    if outbox_dir:
        record = {"channel": "log", "instead_of": "pagerduty", "incident_id": incident.id, "events": events}
        write_outbox(Path(outbox_dir), f"{incident.id}-{action}-pagerduty", record)
    text = f"PagerDuty {action} logged instead (PagerDuty not configured) for {len(events)} alert(s)"
    get_store().change(
        incident.id, lambda i: record_notified(i, f"pagerduty:{action}", text, utcnow(), by="log")
    )
