"""The incident state machine, targets, escalation steps and review draft, on plain records with a
fake clock (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, PolicyError, load_policy
from functions.fanout.incident_record import MAX_TIMELINE
from functions.fanout.incidents import (
    acknowledge,
    add_note,
    alerts_changed,
    escalate,
    open_incident,
    record_notified,
    resolve,
)
from shared.clock import FrozenClock
from tests.fanout.conftest import make_transition

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = load_policy(DEFAULT_POLICY_FILE)


def opened(severity: str = "critical", clock: FrozenClock | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    now = clock.now() if clock else T0
    firing = [make_transition(severity=severity, at=now, **kwargs)]  # type: ignore[arg-type]
    return open_incident(
        f"{severity}-{'0' * 24}-i1",
        group_id=f"{severity}-{'0' * 24}",
        severity=severity,  # type: ignore[arg-type]
        group_labels={"rule": "p95-latency", "service": "persona-router", "region": "us-central1"},
        firing=firing,
        now=now,
        policy=POLICY,
    )


@pytest.mark.parametrize(
    ("severity", "priority", "respond", "resolve_in"),
    [
        ("critical", "P1", timedelta(minutes=15), timedelta(hours=4)),
        ("high", "P2", timedelta(hours=1), timedelta(hours=24)),
        ("medium", "P3", timedelta(hours=4), timedelta(days=3)),
        ("low", "P4", timedelta(hours=24), timedelta(days=7)),
    ],
)
def test_priority_and_targets_follow_the_severity(severity, priority, respond, resolve_in) -> None:  # type: ignore[no-untyped-def]
    incident = opened(severity)
    assert incident.priority == priority
    assert incident.state == "triggered"
    assert incident.respond_by == T0 + respond
    assert incident.resolve_by == T0 + resolve_in
    assert [e.kind for e in incident.timeline] == ["opened", "alert_joined"]
    assert incident.fingerprints == [incident.alerts[0].fingerprint]


def test_the_priorities_are_configurable(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text().replace("critical: P1, high: P2", "critical: P2, high: P1")
    path = tmp_path / "incidents.yaml"
    path.write_text(text)
    policy = load_policy(path)
    assert policy.priority_of("critical") == "P2"
    assert policy.priority_of("high") == "P1"


def test_an_invalid_policy_names_the_file_and_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("targets: {P1: {respond: 15m, resolve: 4h}}\npriorities: {critical: P9}\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message
    assert "priorities.critical" in message
    assert "targets must cover every priority" in message or "P2" in message


def test_acknowledge_once_then_a_no_op_naming_who_acknowledged_first() -> None:
    incident = opened()
    first = acknowledge(incident, "ada", T0 + timedelta(minutes=3), via="Slack")
    assert first.changed
    assert (incident.state, incident.acknowledged_by, incident.acknowledged_at) == (
        "acknowledged",
        "ada",
        T0 + timedelta(minutes=3),
    )
    assert incident.next_escalation_at is None
    second = acknowledge(incident, "grace", T0 + timedelta(minutes=4))
    assert not second.changed
    assert "ada" in second.detail
    assert "09:03:00Z" in second.detail
    assert incident.acknowledged_by == "ada"
    assert [e.kind for e in incident.timeline].count("acknowledged") == 1


def test_resolve_of_a_p1_drafts_the_review_and_a_second_resolve_changes_nothing() -> None:
    incident = opened()
    acknowledge(incident, "ada", T0 + timedelta(minutes=5))
    add_note(incident, "ada", "rolled back deploy 42", T0 + timedelta(minutes=20))
    change = resolve(incident, "ada", T0 + timedelta(minutes=50), POLICY, note="rollback fixed it")
    assert change.changed
    assert incident.state == "resolved"
    assert incident.resolved_by == "ada"
    assert incident.review is not None
    markdown = incident.review.markdown
    for part in ("## Summary", "## Impact", "## Timeline", "## Runbook that applied", "## Actions"):
        assert part in markdown
    assert "time to acknowledge | 5 min 0 s | 15 min 0 s | yes" in markdown
    assert "time to resolve | 50 min 0 s | 4 h 0 min | yes" in markdown
    assert "rolled back deploy 42" in markdown
    assert "Roll back the last deploy if it correlates" in markdown  # the alert's runbook
    assert "0.25" in markdown  # the peak value in the impact table
    assert incident.timeline[-1].kind == "review_drafted"
    again = resolve(incident, "grace", T0 + timedelta(hours=1), POLICY)
    assert not again.changed
    assert "ada" in again.detail
    assert acknowledge(incident, "grace", T0 + timedelta(hours=1)).changed is False


def test_p3_gets_no_review_and_a_missed_target_shows_as_missed() -> None:
    low = opened("medium")
    resolve(low, "ops", T0 + timedelta(hours=1), POLICY)
    assert low.review is None
    late = opened()
    resolve(late, "ops", T0 + timedelta(hours=5), POLICY)
    assert late.review is not None
    assert "| time to acknowledge | — | 15 min 0 s | no |" in late.review.markdown
    assert "Why the acknowledgement missed its target" in late.review.markdown


def test_alerts_joining_and_resolving_resolve_the_incident_when_none_fires() -> None:
    incident = opened()
    other = make_transition(service="billing", at=T0 + timedelta(minutes=1))
    alerts_changed(incident, [other], T0 + timedelta(minutes=1), POLICY)
    assert len(incident.firing) == 2
    # A redelivered transition is recorded once.
    alerts_changed(incident, [other], T0 + timedelta(minutes=1), POLICY)
    assert [e.kind for e in incident.timeline].count("alert_joined") == 2
    first_resolved = make_transition(state="resolved", at=T0 + timedelta(minutes=10))
    alerts_changed(incident, [first_resolved], T0 + timedelta(minutes=10), POLICY)
    assert incident.state == "triggered"
    other_resolved = make_transition(service="billing", state="resolved", at=T0 + timedelta(minutes=12))
    alerts_changed(incident, [other_resolved], T0 + timedelta(minutes=12), POLICY)
    assert incident.state == "resolved"
    assert incident.resolved_by == "alerts"
    assert incident.resolved_at == T0 + timedelta(minutes=12)
    assert [e.kind for e in incident.timeline].count("alert_resolved") == 2


def test_escalation_follows_the_steps_on_a_fake_clock_and_stops_when_acknowledged() -> None:
    clock = FrozenClock(T0)
    incident = opened(clock=clock)
    steps = POLICY.steps("P1")
    assert incident.next_escalation_at == incident.respond_by + steps[0].after == T0 + timedelta(minutes=15)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert not escalate(incident, clock.now(), POLICY).changed  # not due yet
    clock.advance(timedelta(seconds=1))
    assert escalate(incident, clock.now(), POLICY).changed
    assert incident.escalation_level == 1
    assert incident.next_escalation_at == incident.respond_by + steps[1].after
    assert not escalate(incident, clock.now(), POLICY).changed  # the same step twice: once
    clock.advance(steps[1].after)
    assert escalate(incident, clock.now(), POLICY).changed
    assert incident.escalation_level == 2
    assert incident.next_escalation_at is None  # no step left
    escalated = [e for e in incident.timeline if e.kind == "escalated"]
    assert [e.text.split(":")[0] for e in escalated] == ["level 1", "level 2"]  # type: ignore[union-attr]
    assert "@oncall-secondary" in (escalated[0].text or "")

    acked = opened(clock=clock)
    acknowledge(acked, "ada", clock.now())
    clock.advance(timedelta(hours=1))
    assert not escalate(acked, clock.now(), POLICY).changed
    assert acked.escalation_level == 0


def test_a_notification_is_recorded_once_and_the_timeline_stays_bounded() -> None:
    incident = opened()
    assert record_notified(incident, "delivery:n1:slack", "sent", T0).changed
    assert not record_notified(incident, "delivery:n1:slack", "sent", T0).changed
    for n in range(MAX_TIMELINE + 50):
        record_notified(incident, f"delivery:n{n + 2}:slack", "sent", T0)
    assert len(incident.timeline) == MAX_TIMELINE
    assert incident.timeline[0].kind == "opened"  # lifecycle entries are never dropped


def test_a_week_of_flapping_never_drops_the_opening_or_the_acknowledgement() -> None:
    incident = opened()
    acknowledge(incident, "ada", T0 + timedelta(minutes=1))
    steady = make_transition(rule="error-rate", severity="critical", at=T0)
    alerts_changed(incident, [steady], T0, POLICY)
    for n in range(MAX_TIMELINE):  # one alert of two fires and resolves every five minutes
        at = T0 + timedelta(minutes=5 * (n + 1))
        state = "resolved" if n % 2 == 0 else "firing"
        alerts_changed(incident, [make_transition(severity="critical", state=state, at=at)], at, POLICY)
    assert incident.state == "acknowledged"
    assert len(incident.timeline) <= MAX_TIMELINE
    kinds = [e.kind for e in incident.timeline]
    assert kinds[0] == "opened"
    assert kinds.count("acknowledged") == 1


def test_an_incident_resolved_before_respond_by_did_not_miss_the_acknowledgement_target() -> None:
    incident = opened()
    resolved = make_transition(state="resolved", at=T0 + timedelta(minutes=3))
    alerts_changed(incident, [resolved], T0 + timedelta(minutes=3), POLICY)
    assert incident.review is not None
    markdown = incident.review.markdown
    assert "| time to acknowledge | — | 15 min 0 s | not needed: resolved first |" in markdown
    assert "Why the acknowledgement missed its target" not in markdown
    assert "| time to resolve | 3 min 0 s | 4 h 0 min | yes |" in markdown


def test_a_new_firing_while_acknowledged_joins_without_re_triggering() -> None:
    incident = opened()
    acknowledge(incident, "ada", T0 + timedelta(minutes=2))
    again = make_transition(service="billing", at=T0 + timedelta(minutes=3))
    assert alerts_changed(incident, [again], T0 + timedelta(minutes=3), POLICY).changed
    assert incident.state == "acknowledged"
    assert incident.acknowledged_by == "ada"
    assert incident.next_escalation_at is None
    assert not escalate(incident, T0 + timedelta(hours=1), POLICY).changed
    assert len(incident.firing) == 2
