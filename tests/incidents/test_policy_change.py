"""An incident opened under one escalation policy and escalated under the next (a deploy changed
``incidents.yaml`` while it was open): a step the new policy no longer has is not taken, and
nothing fails: on a plain record, and on the served group timer."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.fanout.incident_policy import DEFAULT_POLICY_FILE, IncidentPolicy, load_policy
from functions.fanout.incidents import escalate, open_incident
from tests.fanout.conftest import Fanout, make_transition, reset_fanout_caches

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
BEFORE = load_policy(DEFAULT_POLICY_FILE)


def _one_step_policy() -> IncidentPolicy:
    data = BEFORE.model_dump()
    data["escalation"] = {"P1": [data["escalation"]["P1"][0]]}
    return IncidentPolicy.model_validate(data)


def test_a_level_the_new_policy_no_longer_has_ends_the_escalation_without_an_error() -> None:
    incident = open_incident(
        f"critical-{'0' * 24}-i1",
        group_id=f"critical-{'0' * 24}",
        severity="critical",
        group_labels={"rule": "p95-latency", "service": "persona-router"},
        firing=[make_transition(severity="critical", at=T0)],
        now=T0,
        policy=BEFORE,
    )
    assert escalate(incident, T0 + timedelta(minutes=15), BEFORE).changed
    assert incident.next_escalation_at is not None  # level 2, under the policy it opened with
    after = _one_step_policy()
    change = escalate(incident, T0 + timedelta(minutes=31), after)
    assert not change.changed
    assert "no escalation step left" in change.detail
    assert incident.escalation_level == 1
    assert incident.next_escalation_at is None  # the backstop stops finding it due


@pytest.mark.emulators
def test_the_group_timer_after_the_policy_lost_a_step_answers_200_and_stops_escalating(
    incidents: Fanout, tmp_path: Path
) -> None:
    clock = incidents.freeze(datetime.now(UTC).replace(microsecond=0))
    firing = make_transition(severity="critical", at=clock.now())
    assert incidents.push(firing) == 200
    [incident] = incidents.http().get("/v1/incidents").get_json()
    clock.advance(timedelta(minutes=15))
    incidents.tick()  # level 1, under the policy the incident opened with
    text = DEFAULT_POLICY_FILE.read_text()
    start = text.index("\n    - {after: 15m")
    end = text.index("\n  P2:", start)
    one_step = tmp_path / "incidents-one-step.yaml"
    one_step.write_text(text[:start] + text[end:])
    os.environ["ION_FANOUT_INCIDENT_POLICY_FILE"] = str(one_step)
    reset_fanout_caches()
    try:
        assert len(load_policy(one_step).steps("P1")) == 1
        clock.advance(timedelta(minutes=16))
        due_at = clock.now().isoformat()
        answer = incidents.http().post(
            "/v1/flush/group", json={"group_id": incident["group_key"], "due_at": due_at}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        stored = incidents.http().get(f"/v1/incidents/{incident['id']}").get_json()
        assert stored["escalation_level"] == 1
        assert stored["next_escalation_at"] is None
    finally:
        os.environ.pop("ION_FANOUT_INCIDENT_POLICY_FILE", None)
        reset_fanout_caches()
