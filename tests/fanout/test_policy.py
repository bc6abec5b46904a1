"""The fan-out's decisions over records in memory (no emulator): flapping, grouping timers,
silences and inhibition, and what a flush notifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.fanout.matchers import Matcher, alert_labels
from functions.fanout.policy import admit, enqueue, mute_reason, plan
from functions.fanout.records import AlertRecord, GroupRecord
from functions.fanout.routes import Flapping, load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from functions.fanout.silences import Silence
from shared.messages import AlertTransition
from tests.fanout.conftest import make_transition

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FLAP = Flapping(transitions=4, window=timedelta(minutes=10), hold=timedelta(minutes=10))
ROUTING = load_routing(DEFAULT_ROUTING_FILE)


def record(t: AlertTransition, **fields: object) -> AlertRecord:
    base = {
        "fingerprint": t.fingerprint,
        "group_id": "g",
        "severity": t.severity,
        "state": t.state,
        "labels": alert_labels(t),
        "latest": t,
        "changes": [t.evaluated_at],
    }
    return AlertRecord.model_validate({**base, **fields})


def test_a_first_transition_is_pending_and_starts_the_alert_record() -> None:
    t = make_transition(at=T0)
    outcome, alert = admit(t, None, "g", FLAP)
    assert outcome == "pending"
    assert alert is not None
    assert (alert.state, alert.changes, alert.held, alert.notified_state) == ("firing", [T0], False, None)


def test_an_older_transition_is_stale_and_leaves_the_record_alone() -> None:
    newer = make_transition(at=T0)
    older = make_transition(state="resolved", at=T0 - timedelta(seconds=1))
    assert admit(older, record(newer), "g", FLAP) == ("stale", None)


def test_flapping_after_firing_was_announced_holds_resolves_and_absorbs_refires() -> None:
    changes = [T0 + timedelta(minutes=m) for m in range(3)]
    firing = make_transition(at=changes[-1])
    announced = record(firing, changes=changes, notified_state="firing")
    resolve = make_transition(state="resolved", at=T0 + timedelta(minutes=3))
    outcome, alert = admit(resolve, announced, "g", FLAP)
    assert outcome == "held"
    assert alert is not None
    assert alert.held
    assert alert.state == "resolved"
    refire = make_transition(at=T0 + timedelta(minutes=4))
    outcome, alert = admit(refire, alert, "g", FLAP)
    assert outcome == "absorbed"
    assert alert is not None
    assert not alert.held
    assert alert.notified_state == "firing"


def test_changes_outside_the_window_do_not_count_as_flapping() -> None:
    old = [T0 - timedelta(minutes=30 + m) for m in range(5)]
    announced = record(make_transition(at=old[0]), changes=old, notified_state="firing")
    outcome, alert = admit(make_transition(state="resolved", at=T0), announced, "g", FLAP)
    assert outcome == "pending"
    assert alert is not None
    assert alert.changes == [T0]


def test_a_new_group_waits_group_wait_a_notified_one_group_interval_after_its_last_flush() -> None:
    wait, interval = timedelta(seconds=10), timedelta(minutes=5)
    fresh = GroupRecord(group_id="g", severity="high", labels={})
    enqueue(fresh, "t1", T0, wait, interval)
    enqueue(fresh, "t1", T0 + timedelta(seconds=5), wait, interval)  # a redelivery changes nothing
    assert (fresh.pending, fresh.next_flush_at) == (["t1"], T0 + wait)
    notified = GroupRecord(
        group_id="g", severity="high", labels={}, last_flush_at=T0, firing=["fp"], pending=[]
    )
    enqueue(notified, "t2", T0 + timedelta(minutes=1), wait, interval)
    assert notified.next_flush_at == T0 + interval
    enqueue(notified, "t3", T0 + timedelta(minutes=2), wait, interval)
    assert notified.next_flush_at == T0 + interval  # the first pending one set the time
    late = GroupRecord(group_id="g", severity="high", labels={}, last_flush_at=T0, firing=["fp"])
    enqueue(late, "t4", T0 + timedelta(hours=1), wait, interval)
    assert late.next_flush_at == T0 + timedelta(hours=1)


def silence_on(service: str) -> Silence:
    return Silence(
        id="s1",
        matchers=[Matcher(name="service", value=service)],
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        created_by="ada@example.com",
        comment="maintenance",
        updated_at=T0 - timedelta(hours=1),
    )


def test_mute_reason_names_the_silence_or_the_inhibiting_alert() -> None:
    high = make_transition(severity="high", at=T0)
    assert mute_reason(high, alert_labels(high), [], [], ROUTING, T0) is None
    silenced = mute_reason(high, alert_labels(high), [], [silence_on("persona-router")], ROUTING, T0)
    assert silenced == "silenced by s1"
    assert mute_reason(high, alert_labels(high), [], [silence_on("other")], ROUTING, T0) is None
    critical = record(make_transition(rule="error-rate", severity="critical", at=T0))
    inhibited = mute_reason(high, alert_labels(high), [critical], [], ROUTING, T0)
    assert inhibited == f"inhibited by {critical.fingerprint} (error-rate)"
    elsewhere = record(make_transition(severity="critical", region="europe-west1", at=T0))
    assert mute_reason(high, alert_labels(high), [elsewhere], [], ROUTING, T0) is None


def test_plan_notifies_the_latest_change_of_each_alert_and_says_why_the_rest_are_not() -> None:
    first = make_transition(rule="a", severity="high", at=T0)
    superseding = make_transition(rule="a", severity="high", state="resolved", at=T0 + timedelta(seconds=1))
    unannounced = make_transition(rule="b", severity="high", state="resolved", at=T0)
    announced_resolve = make_transition(rule="c", severity="high", state="resolved", at=T0)
    silenced = make_transition(rule="d", severity="high", service="quiet", at=T0)
    fresh = make_transition(rule="e", severity="high", at=T0)
    pending = [first, superseding, unannounced, announced_resolve, silenced, fresh]
    group = GroupRecord(
        group_id="g", severity="high", labels={}, pending=[t.transition_id for t in pending] + ["gone"]
    )
    alerts = {
        announced_resolve.fingerprint: record(announced_resolve, notified_state="firing"),
        first.fingerprint: record(superseding, notified_state=None),
    }
    quiet = silence_on("quiet")
    decided = plan(
        group, {t.transition_id: t for t in pending}, alerts, [], [quiet], ROUTING, T0 + timedelta(seconds=2)
    )
    outcomes = {item["transition_id"]: (item["outcome"], item["reason"]) for item in decided.items}
    assert outcomes == {
        first.transition_id: ("superseded", None),
        superseding.transition_id: ("unannounced", None),
        unannounced.transition_id: ("unannounced", None),
        announced_resolve.transition_id: ("notified", None),
        silenced.transition_id: ("muted", "silenced by s1"),
        fresh.transition_id: ("notified", None),
    }
    assert [t.transition_id for t in decided.notify] == [announced_resolve.transition_id, fresh.transition_id]


def test_the_resolve_of_an_announced_alert_goes_out_even_when_silenced() -> None:
    resolve = make_transition(severity="high", state="resolved", at=T0)
    group = GroupRecord(group_id="g", severity="high", labels={}, pending=[resolve.transition_id])
    alerts = {resolve.fingerprint: record(resolve, notified_state="firing")}
    decided = plan(
        group, {resolve.transition_id: resolve}, alerts, [], [silence_on("persona-router")], ROUTING, T0
    )
    assert [t.transition_id for t in decided.notify] == [resolve.transition_id]
