"""Escalation on a precise timer: the incident's next step is a Cloud Tasks task (the real
google-cloud-tasks client against the stand-in, a paused queue dispatched by the test, a frozen
clock) calling /v1/flush/group at respond_by; acknowledging makes the later timers find nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtools.cloudtasks_standin import CloudTasksState
from tests.fanout.conftest import Fanout, make_transition
from tests.fanout.test_timers import due, fire, group_of, queue, tasks  # noqa: F401 - the queue fixture

pytestmark = pytest.mark.emulators


def test_the_escalation_timer_fires_at_respond_by_and_ack_silences_the_next(
    fanout: Fanout,
    queue: CloudTasksState,  # noqa: F811 - the fixture
) -> None:
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    opened = clock.now()
    alert = make_transition(severity="critical", at=opened)
    assert fanout.push(alert) == 200
    [incident] = fanout.http().get("/v1/incidents").get_json()
    respond_by = opened + timedelta(minutes=15)
    assert sorted(due(t) for t in tasks(queue)) == [respond_by, opened + timedelta(minutes=30)]
    escalation = next(t for t in tasks(queue) if due(t) == respond_by)

    clock.set(respond_by)
    answer = fire(fanout, escalation)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["notifications"] == [f"{incident['id']}-e1"]
    assert "ESCALATED (level 1)" in fanout.pagerduty.events[-1]["payload"]["summary"]
    assert fire(fanout, escalation).get_json()["notifications"] == []  # the same timer twice: once
    # Level 2 is due at respond_by + 15 min, the same moment as the 30-minute repeat: one timer.
    later = [t for t in tasks(queue) if due(t) > respond_by]
    assert [due(t) for t in later] == [opened + timedelta(minutes=30)]

    clock.advance(timedelta(minutes=3))
    ack = fanout.http().post(f"/v1/incidents/{incident['id']}/ack")
    assert ack.status_code == 200
    assert ack.get_json()["incident"]["acknowledged_by"] == "anonymous"  # locally, nobody named the caller
    events = len(fanout.pagerduty.events)
    messages = len(fanout.slack.messages)
    clock.set(due(later[0]))
    assert fire(fanout, later[0]).get_json()["notifications"] == []  # no escalation, no repeat
    assert len(fanout.pagerduty.events) == events
    assert len(fanout.slack.messages) == messages
    stored = fanout.http().get(f"/v1/incidents/{incident['id']}").get_json()
    assert stored["escalation_level"] == 1
    assert stored["next_escalation_at"] is None
    assert group_of(alert) == stored["group_key"]
