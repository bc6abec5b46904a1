"""What people do to an incident, wherever they do it (the operator API, a Slack button, a
PagerDuty webhook): acknowledge, resolve, add a note, take back an acknowledgement (PagerDuty's;
silencing for an hour is ``incident_silences.py``). Each runs
the domain change in the store's transaction, then tells the other side: an acknowledgement or
resolve made here (API or Slack) is sent to PagerDuty as an Events v2 ``acknowledge`` /
``resolve`` with the alerts' ``dedup_key``s, recorded with the change and tried within a short
bound, then by the flush tick (``pagerduty_sync.py``); one that came from PagerDuty is not sent
back. One made elsewhere than Slack updates the incident's Slack messages
(a Slack button updates its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from functions.fanout.incident_policy import get_policy
from functions.fanout.incident_record import Change, Incident
from functions.fanout.incident_store import get_store
from functions.fanout.incidents import acknowledge, add_note, resolve, unacknowledge
from functions.fanout.pagerduty_sync import Action, request_sync, tell_pagerduty
from shared.clock import utcnow
from shared.logging import get_logger

Source = Literal["api", "slack", "pagerduty"]
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


def _told(change: Change, incident: Incident, source: Source, action: Action) -> Change:
    """In the change's transaction: PagerDuty is to be told of what was done here (not of what it
    did itself), recorded with the change so that nothing is lost (``pagerduty_sync``)."""
    if change.changed and source != "pagerduty":
        request_sync(incident, action, utcnow())
    return change


def acknowledge_incident(incident_id: str, by: str, source: Source, *, at: datetime | None = None) -> Outcome:
    def mutate(i: Incident) -> Change:
        return _told(acknowledge(i, by, _moment(i, at), via=_via(source)), i, source, "acknowledge")

    outcome = _apply(incident_id, mutate)
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

    def mutate(i: Incident) -> Change:
        change = resolve(i, by, _moment(i, at), policy, note=note, via=_via(source))
        return _told(change, i, source, "resolve")

    outcome = _apply(incident_id, mutate)
    if outcome.change.changed:
        log.info(
            "incident %s resolved by %s", incident_id, by, extra={"incident_id": incident_id, "via": source}
        )
        if source != "pagerduty":
            tell_pagerduty(outcome.incident, "resolve")
        if source != "slack":
            _tell_slack(outcome, "resolve")
    return outcome


def unacknowledge_incident(incident_id: str, by: str, *, at: datetime, ref: str) -> Outcome:
    """PagerDuty took the acknowledgement back (``incident.unacknowledged``): triggered again, its
    current level notified again by the flush tick (this public function arms no timers), and its
    Slack messages show it unacknowledged with the Acknowledge button back."""
    outcome = _apply(incident_id, lambda i: unacknowledge(i, by, min(at, utcnow()), ref=ref))
    if outcome.change.changed:
        log.warning(
            "incident %s unacknowledged by %s: escalation resumes",
            incident_id,
            by,
            extra={"incident_id": incident_id, "via": "pagerduty"},
        )
        _tell_slack(outcome, "acknowledge")
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


def _tell_slack(outcome: Outcome, action: Literal["acknowledge", "resolve"]) -> None:
    """The incident's Slack messages show a change made elsewhere (Slack's own buttons update
    their message themselves)."""
    from functions.fanout.channels.slack_blocks import ACK_ACTION, RESOLVE_ACTION
    from functions.fanout.slack_interactions import echo_elsewhere

    echo_elsewhere(outcome, ACK_ACTION if action == "acknowledge" else RESOLVE_ACTION)


def _via(source: Source) -> str:
    return {"api": "the incidents API", "slack": "Slack", "pagerduty": "PagerDuty"}[source]
