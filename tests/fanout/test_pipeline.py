"""Noise control on the emulators, through functions-framework and the flush tick, with a frozen
clock: grouping (group_wait, group_interval, repeat_interval), inhibition, silences, flapping,
and the Slack thread that follows an alert to its end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def silence(fanout: Fanout, matchers: list[dict], minutes: int = 60) -> dict:  # type: ignore[type-arg]
    assert fanout.clock is not None
    body = {
        "matchers": matchers,
        "endsAt": (fanout.clock.now() + timedelta(minutes=minutes)).isoformat(),
        "createdBy": "ada@example.com",
        "comment": "maintenance",
    }
    response = fanout.http().post("/v1/silences", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_alerts_of_one_group_are_notified_together_after_group_wait(fanout: Fanout) -> None:
    clock = fanout.freeze()
    a = make_transition(rule="error-rate", severity="medium", endpoint="/v2/route", at=clock.now())
    assert fanout.push(a) == 200
    other = make_transition(rule="error-rate", severity="medium", region="europe-west1", at=clock.now())
    assert fanout.push(other) == 200
    clock.advance(timedelta(seconds=4))
    b = make_transition(rule="error-rate", severity="medium", endpoint="/v2/bulk", at=clock.now())
    assert fanout.push(b) == 200
    assert fanout.tick()["flushed"] == []  # group_wait (30 s) not over
    assert fanout.slack.messages == []
    clock.advance(timedelta(seconds=27))
    assert len(fanout.tick()["flushed"]) == 2  # two groups: us-central1 and europe-west1
    assert len(fanout.slack.top_level()) == 2
    together = next(m for m in fanout.slack.messages if "us-central1" in m.blocks[0]["text"]["text"])
    assert "FIRING:2" in together.blocks[0]["text"]["text"]
    assert "/v2/route" not in together.blocks[0]["text"]["text"]  # endpoint is not a group label
    # A later change in a notified group waits group_interval (5 m) after the last notification.
    clock.advance(timedelta(minutes=1))
    c = make_transition(rule="error-rate", severity="medium", endpoint="/v2/feedback", at=clock.now())
    assert fanout.push(c) == 200
    clock.advance(timedelta(minutes=1))
    assert fanout.tick()["flushed"] == []
    clock.advance(timedelta(minutes=3, seconds=1))
    assert len(fanout.tick()["flushed"]) == 1
    assert len(fanout.slack.top_level()) == 3


def test_the_first_high_alert_of_a_group_goes_at_once_its_followers_by_group_interval(fanout: Fanout) -> None:
    clock = fanout.freeze()
    first = make_transition(rule="error-rate", severity="high", endpoint="/v2/route", at=clock.now())
    assert fanout.push(first) == 200
    assert len(fanout.slack.top_level()) == 1  # from the Pub/Sub handler: no tick, no wait
    assert len(fanout.smtp.mails) == 1
    clock.advance(timedelta(seconds=5))
    follower = make_transition(rule="error-rate", severity="high", endpoint="/v2/bulk", at=clock.now())
    assert fanout.push(follower) == 200
    assert len(fanout.slack.top_level()) == 1  # batched: group_interval (5 m) after the first
    clock.advance(timedelta(minutes=5))
    assert len(fanout.tick()["flushed"]) == 1
    assert len(fanout.slack.top_level()) == 2


def test_critical_is_sent_at_once_and_its_resolve_follows_in_the_thread(fanout: Fanout) -> None:
    clock = fanout.freeze()
    firing = make_transition(severity="critical", at=clock.now())
    assert fanout.push(firing) == 200
    [parent] = fanout.slack.messages  # group_wait 0: from the Pub/Sub handler, no tick needed
    clock.advance(timedelta(minutes=3))
    resolved = make_transition(severity="critical", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    [reply] = fanout.slack.replies(parent.ts)
    assert "RESOLVED" in reply.all_text()
    assert len(parent.updates) == 1
    assert ":white_check_mark:" in parent.updates[0]["blocks"][0]["text"]["text"]
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger", "resolve"]
    assert len({e["dedup_key"] for e in fanout.pagerduty.events}) == 1


@pytest.mark.usefixtures("without_escalation")
def test_a_critical_still_firing_is_renotified_after_30_minutes(fanout: Fanout) -> None:
    clock = fanout.freeze()
    assert fanout.push(make_transition(severity="critical", at=clock.now())) == 200
    [parent] = fanout.slack.messages
    clock.advance(timedelta(minutes=29))
    assert fanout.tick()["repeats"] == []
    clock.advance(timedelta(minutes=1, seconds=1))
    assert len(fanout.tick()["repeats"]) == 1
    assert fanout.tick()["repeats"] == []  # once per interval
    [repeat] = fanout.slack.replies(parent.ts)
    assert repeat.reply_broadcast
    assert "@oncall" in repeat.all_text()
    assert [e["event_action"] for e in fanout.pagerduty.events] == ["trigger", "trigger"]
    assert "STILL FIRING" in fanout.pagerduty.events[1]["payload"]["summary"]


def test_a_firing_critical_inhibits_lower_severities_of_its_service_and_region(fanout: Fanout) -> None:
    clock = fanout.freeze()
    critical = make_transition(rule="error-rate-critical", severity="critical", at=clock.now())
    assert fanout.push(critical) == 200
    high_same = make_transition(rule="error-rate", severity="high", at=clock.now())
    high_elsewhere = make_transition(
        rule="error-rate", severity="high", region="asia-southeast1", at=clock.now()
    )
    assert fanout.push(high_same) == 200
    assert fanout.push(high_elsewhere) == 200
    clock.advance(timedelta(seconds=11))
    fanout.tick()
    texts = [m.all_text() for m in fanout.slack.top_level()]
    assert len(texts) == 2
    assert any("asia-southeast1" in t for t in texts)
    assert len(fanout.smtp.mails) == 1  # only the one elsewhere
    # The critical resolves: the still-firing high alert is no longer muted and is notified.
    clock.advance(timedelta(minutes=2))
    assert (
        fanout.push(
            make_transition(rule="error-rate-critical", severity="critical", state="resolved", at=clock.now())
        )
        == 200
    )
    report = fanout.tick()
    assert report["unmuted"] == [high_same.fingerprint]
    assert len(fanout.smtp.mails) == 2
    assert "us-central1" in fanout.smtp.mails[-1]["Subject"]


def test_silenced_alerts_are_not_notified_until_the_silence_ends(fanout: Fanout) -> None:
    clock = fanout.freeze()
    created = silence(
        fanout,
        [
            {"name": "rule", "value": "cache-hit-.*", "isRegex": True},
            {"name": "region", "value": "us-central1"},
        ],
    )
    muted = make_transition(rule="cache-hit-low", severity="critical", at=clock.now())
    assert fanout.push(muted) == 200
    unmatched = make_transition(
        rule="cache-hit-low", severity="critical", region="europe-west1", at=clock.now()
    )
    assert fanout.push(unmatched) == 200
    assert len(fanout.slack.messages) == 1
    assert "europe-west1" in fanout.slack.messages[0].all_text()
    assert len(fanout.pagerduty.events) == 1
    # Expire the silence: the alert still firing is notified at the next tick.
    clock.advance(timedelta(minutes=5))
    assert fanout.http().delete(f"/v1/silences/{created['id']}").status_code == 200
    assert fanout.tick()["unmuted"] == [muted.fingerprint]
    assert len(fanout.slack.top_level()) == 2
    assert len(fanout.pagerduty.events) == 2


def test_a_silenced_alert_that_resolves_says_nothing(fanout: Fanout) -> None:
    clock = fanout.freeze()
    silence(fanout, [{"name": "service", "value": "persona-router"}])
    assert fanout.push(make_transition(severity="critical", at=clock.now())) == 200
    clock.advance(timedelta(minutes=2))
    assert fanout.push(make_transition(severity="critical", state="resolved", at=clock.now())) == 200
    fanout.tick()
    assert fanout.slack.messages == []
    assert fanout.pagerduty.events == []


def test_a_flapping_alert_is_held_open_instead_of_refiring(fanout: Fanout) -> None:
    clock = fanout.freeze()
    actions = []
    for i in range(6):  # firing, resolved, firing, resolved, firing, resolved: 70 s apart
        state = "firing" if i % 2 == 0 else "resolved"
        assert fanout.push(make_transition(severity="critical", state=state, at=clock.now())) == 200
        fanout.tick()
        actions.append([e["event_action"] for e in fanout.pagerduty.events])
        clock.advance(timedelta(seconds=70))
    # The first three changes are notified; from the fourth (4 in 10 min) it is held open.
    assert actions[2] == ["trigger", "resolve", "trigger"]
    assert actions[5] == ["trigger", "resolve", "trigger"]
    assert len(fanout.slack.top_level()) == 2
    # Quiet for `hold` (10 min): the held resolve goes out, once.
    clock.advance(timedelta(minutes=9))
    report = fanout.tick()
    assert report["released"] != []
    assert [e["event_action"] for e in fanout.pagerduty.events] == [
        "trigger",
        "resolve",
        "trigger",
        "resolve",
    ]
    fanout.tick()
    assert len(fanout.pagerduty.events) == 4


def test_a_fire_and_resolve_inside_group_wait_is_not_notified(fanout: Fanout) -> None:
    clock = fanout.freeze()
    assert fanout.push(make_transition(rule="cpu", severity="medium", at=clock.now())) == 200
    clock.advance(timedelta(seconds=10))
    assert (
        fanout.push(make_transition(rule="cpu", severity="medium", state="resolved", at=clock.now())) == 200
    )
    clock.advance(timedelta(seconds=25))
    fanout.tick()
    assert fanout.slack.messages == []


def test_low_goes_to_the_log_only(fanout: Fanout) -> None:
    clock = fanout.freeze()
    assert fanout.push(make_transition(rule="p95-over-50ms", severity="low", at=clock.now())) == 200
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert fanout.slack.messages == []
    assert fanout.smtp.mails == []
    [record] = fanout.outbox_records()
    assert record["instead_of"] is None
    assert record["notification"]["severity"] == "low"


def test_a_notification_left_unfinished_by_a_dead_instance_is_redriven_by_the_tick(fanout: Fanout) -> None:
    from functions.fanout import pipeline
    from functions.fanout.routes import get_routing

    clock = fanout.freeze()
    transition = make_transition(severity="critical", at=clock.now())
    # An instance ingests and flushes, then dies before delivering.
    pipeline.ingest(transition, clock.now(), get_routing())
    notification_id = pipeline.flush(get_routing().group_id(transition), clock.now(), get_routing())
    assert notification_id is not None
    assert fanout.slack.messages == []
    clock.advance(timedelta(minutes=1))
    assert fanout.tick()["redriven"] == []  # not yet: it may still be in flight
    clock.advance(timedelta(minutes=2))
    assert fanout.tick()["redriven"] == [notification_id]
    assert len(fanout.slack.messages) == 1
    assert len(fanout.pagerduty.events) == 1
    assert fanout.tick()["redriven"] == []  # complete now
