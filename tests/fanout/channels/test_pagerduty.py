"""The PagerDuty channel against the Events API v2 stand-in."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.pagerduty import PagerDutyChannel
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from tests.fanout.conftest import make_transition
from tests.fanout.pagerduty_standin import PagerDutyStandIn


def channel_for(pd: PagerDutyStandIn, key: str | None = None) -> PagerDutyChannel:
    os.environ.update({"PAGERDUTY_ROUTING_KEY": key or pd.routing_key, "PAGERDUTY_EVENTS_URL": pd.url})
    return PagerDutyChannel(FanoutSettings())


def retrier() -> Retrier:
    return Retrier(max_attempts=3, budget_seconds=5, base_delay=0.01, max_delay=0.05)


def notification(*alerts, kind="notify") -> Notification:  # type: ignore[no-untyped-def]
    return Notification(
        notification_id="n1",
        kind=kind,
        group_id="g1",
        group_labels={},
        severity="critical",
        alerts=list(alerts),
        created_at=datetime.now(UTC),
    )


def test_trigger_then_resolve_share_the_fingerprint_as_dedup_key(pagerduty: PagerDutyStandIn) -> None:
    channel = channel_for(pagerduty)
    firing = make_transition(severity="critical", value=0.31)
    channel.send(notification(firing), retrier())
    channel.send(notification(make_transition(severity="critical", state="resolved")), retrier())
    trigger, resolve = pagerduty.events
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == resolve["dedup_key"] == firing.fingerprint
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "persona-router"
    assert "p95-latency on persona-router" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["runbook"] == firing.runbook
    assert resolve == {
        "routing_key": pagerduty.routing_key,
        "event_action": "resolve",
        "dedup_key": firing.fingerprint,
    }


def test_severities_map_to_pagerduty_severities(pagerduty: PagerDutyStandIn) -> None:
    channel = channel_for(pagerduty)
    for ours, theirs in [("high", "error"), ("medium", "warning"), ("low", "info")]:
        channel.send(notification(make_transition(severity=ours)), retrier())
        assert pagerduty.events[-1]["payload"]["severity"] == theirs


def test_an_invalid_event_is_not_retried(pagerduty: PagerDutyStandIn) -> None:
    channel = channel_for(pagerduty, key="not-the-key")
    with pytest.raises(DeliveryFailed, match="Invalid routing key"):
        channel.send(notification(make_transition()), retrier())
    assert len(pagerduty.rejected) == 1


def test_server_errors_are_retried_within_the_bound(pagerduty: PagerDutyStandIn) -> None:
    channel = channel_for(pagerduty)
    pagerduty.fail_status = 503
    r = retrier()
    with pytest.raises(DeliveryFailed, match="503"):
        channel.send(notification(make_transition()), r)
    assert r.attempts == 3


def test_an_alert_without_service_or_region_labels_leaves_component_and_group_out(
    pagerduty: PagerDutyStandIn,
) -> None:
    # A rule grouped by nothing (an SLO, a dead man's switch) has neither label: the optional
    # strings were sent as null, which the Events API's schema does not allow for a string.
    channel = channel_for(pagerduty)
    bare = make_transition(severity="critical")
    bare = bare.model_copy(update={"labels": {}})
    channel.send(notification(bare), retrier())
    payload = pagerduty.events[-1]["payload"]
    assert "component" not in payload
    assert "group" not in payload
    channel.send(notification(make_transition(severity="critical")), retrier())
    payload = pagerduty.events[-1]["payload"]
    assert (payload["component"], payload["group"]) == ("persona-router", "us-central1")


@pytest.mark.parametrize("status", [400, 503])
def test_an_answer_quoting_the_routing_key_leaves_it_out_of_the_reason_and_the_log(
    pagerduty: PagerDutyStandIn, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reason goes to the give-up log line, the dead letter and the incident's timeline.
    pagerduty.echo_request = True
    key = "not-the-key-but-a-secret-all-the-same" if status == 400 else pagerduty.routing_key
    if status == 503:
        pagerduty.fail_status = 503
    channel = channel_for(pagerduty, key=key)
    with pytest.raises(DeliveryFailed) as failed:
        channel.send(notification(make_transition()), retrier())
    logged = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert logged or status == 400  # a 503 is retried, each retry logged with its reason
    for text in [failed.value.reason, *logged]:
        assert key not in text, text
    assert str(status) in failed.value.reason
    assert "[redacted]" in failed.value.reason  # the rest of the answer is kept


def group_notification(*alerts, group_firing: int, incident_id: str | None = "inc-1", kind="notify"):  # type: ignore[no-untyped-def]
    """A notification of a group whose incident is one PagerDuty incident (``dedup_key`` inc-1)."""
    return notification(*alerts, kind=kind).model_copy(
        update={"pagerduty_key": "inc-1", "group_firing": group_firing, "incident_id": incident_id}
    )


def test_a_group_is_one_trigger_per_notification_and_one_resolve_after_its_last_alert(
    pagerduty: PagerDutyStandIn,
) -> None:
    channel = channel_for(pagerduty)
    firing = [make_transition(endpoint=f"/e{i}") for i in range(3)]
    resolved = [make_transition(endpoint=f"/e{i}", state="resolved") for i in range(3)]
    channel.send(group_notification(*firing, group_firing=3), retrier())
    channel.send(group_notification(*resolved[:2], group_firing=1), retrier())  # one still fires
    channel.send(group_notification(resolved[2], group_firing=0), retrier())
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events] == [
        ("trigger", "inc-1"),
        ("trigger", "inc-1"),
        ("resolve", "inc-1"),
    ]
    first, update, _ = pagerduty.events
    assert first["payload"]["summary"].startswith("[FIRING:3] p95-latency")
    assert first["payload"]["custom_details"]["firing"] == 3
    assert update["payload"]["custom_details"]["resolved"] == 2
    [incident] = pagerduty.incidents
    assert (incident.triggers, incident.status) == (2, "resolved")


def test_a_notice_is_its_own_trigger_and_resolves_of_a_group_resolved_by_hand_send_nothing(
    pagerduty: PagerDutyStandIn,
) -> None:
    from shared.notices import NOTICE_KIND

    channel = channel_for(pagerduty)
    notice = make_transition(rule="budget-crossed").model_copy(update={"kind": NOTICE_KIND})
    channel.send(group_notification(notice, make_transition(), group_firing=1), retrier())
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events] == [
        ("trigger", notice.fingerprint),
        ("trigger", "inc-1"),
    ]
    # Its incident resolved here (and in PagerDuty), others still firing: the next repeat opens a
    # new incident of each; until then a resolve re-triggering the old key would open one.
    hand_resolved = make_transition(endpoint="/e9", state="resolved")
    channel.send(group_notification(hand_resolved, group_firing=1, incident_id=None), retrier())
    assert len(pagerduty.events) == 2
