"""A storm bigger than one Firestore document: a flush carries the alerts that fit and leaves the
rest pending for the next flush, every alert announced once; a reminder counts what it leaves out.
Before, the notification of a group of about 1,300 alerts could not be stored (Firestore's 1 MiB
document limit), so that group's alerts never went out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core.exceptions import InvalidArgument

from functions.fanout import notification_size
from functions.fanout.models import Notification
from functions.fanout.notification_size import alert_bytes, fit_alerts, item_bytes, split_plan
from functions.fanout.policy import Plan
from functions.fanout.records import NOTIFICATIONS, TRANSITIONS, store_notification
from shared.firestore import get_firestore, run_transaction
from shared.messages import AlertTransition
from tests.fanout.conftest import Fanout, make_transition

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _alert(index: int, *, padding: int = 0, state: str = "firing", at: datetime = AT) -> AlertTransition:
    alert = make_transition(severity="medium", endpoint=f"/e{index:04d}", state=state, at=at)
    if padding:
        alert = alert.model_copy(update={"annotations": {"summary": "x" * padding}})
    return alert


def _item(alert: AlertTransition, outcome: str = "notified") -> dict[str, Any]:
    return {
        "transition_id": alert.transition_id,
        "fingerprint": alert.fingerprint,
        "outcome": outcome,
        "reason": None,
    }


def test_a_flush_carries_what_fits_and_leaves_each_fingerprint_whole_for_the_next() -> None:
    older = _alert(3, at=AT - timedelta(minutes=1))  # superseded by alerts[3] in the same flush
    alerts = [_alert(i) for i in range(6)]
    muted = _alert(9)
    items = [_item(older, "superseded"), *map(_item, alerts), _item(muted, "muted")]
    plan = Plan(items=items, notify=alerts)
    first_three = sum(alert_bytes(a) + item_bytes(_item(a)) for a in alerts[:3])
    budget = item_bytes(items[-1]) + first_three  # the muted item goes in any case
    carried, pending = split_plan(plan, budget=budget)
    assert carried.notify == alerts[:3]
    # alerts[3]'s older transition waits with it: a later flush never announces the older state.
    assert pending == [older.transition_id, *(a.transition_id for a in alerts[3:])]
    assert {i["transition_id"] for i in carried.items} == {
        *(a.transition_id for a in alerts[:3]),
        muted.transition_id,
    }
    assert split_plan(plan) == (plan, [])  # within the real budget: the plan as it was


def test_one_alert_bigger_than_the_budget_still_goes() -> None:
    plan = Plan(items=[_item(_alert(0, padding=5_000))], notify=[_alert(0, padding=5_000)])
    assert split_plan(plan, budget=1_000) == (plan, [])
    assert fit_alerts([_alert(0, padding=5_000)], budget=1_000)[1] == 0


def test_a_reminder_counts_the_alerts_it_cannot_carry() -> None:
    alerts = [_alert(i) for i in range(10)]
    carried, left_out = fit_alerts(alerts, budget=sum(map(alert_bytes, alerts[:4])))
    assert carried == alerts[:4]
    assert left_out == 6


@pytest.mark.emulators
def test_the_real_limit_a_storms_notification_is_stored_split_and_refused_whole(fs: Any) -> None:
    alerts = [_alert(i, padding=800) for i in range(1_400)]
    plan = Plan(items=[_item(a) for a in alerts], notify=alerts)

    def store(notify: list[AlertTransition], items: list[dict[str, Any]], notification_id: str) -> None:
        notification = Notification(
            notification_id=notification_id,
            kind="notify",
            group_id="g",
            group_labels={},
            severity="medium",
            alerts=notify,
            created_at=AT,
        )
        run_transaction(lambda tx: store_notification(tx, notification, ["slack"], items))

    with pytest.raises(InvalidArgument):  # what a flush did before: the whole group at once
        store(plan.notify, plan.items, "whole")
    carried, pending = split_plan(plan)
    store(carried.notify, carried.items, "split")
    assert get_firestore().collection(NOTIFICATIONS).document("split").get().exists
    assert 0 < len(carried.notify) < len(alerts)
    assert len(carried.notify) + len(pending) == len(alerts)


@pytest.mark.emulators
def test_a_group_past_the_budget_is_announced_over_several_flushes_each_alert_once(
    fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = fanout.freeze()
    alerts = [_alert(i, at=clock.now()) for i in range(10)]
    one = alert_bytes(alerts[0]) + item_bytes(_item(alerts[0]))
    monkeypatch.setattr(notification_size, "NOTIFICATION_BYTES", 3 * one)
    for alert in alerts:
        assert fanout.push(alert) == 200
    for _ in range(8):
        clock.advance(timedelta(minutes=1))  # past medium's 30 s group_wait, then each tick
        fanout.tick()
    client = get_firestore()
    stored = [snap.to_dict() for snap in client.collection(NOTIFICATIONS).stream()]
    announced = [a["fingerprint"] for doc in stored for a in doc["notification"]["alerts"]]
    assert sorted(announced) == sorted(a.fingerprint for a in alerts)  # each once
    assert len(stored) == 4  # 3 + 3 + 3 + 1
    assert all(len(doc["notification"]["alerts"]) <= 3 for doc in stored)
    for snap in client.collection(TRANSITIONS).stream():
        assert snap.to_dict()["outcome"] == "notified"
    assert {m.all_text().count("/e0") for m in fanout.slack.top_level()} <= {0, 1}


def test_a_reminders_left_out_alerts_are_counted_in_its_mail(smtp: Any) -> None:
    from tests.fanout.channels.test_email import channel_for, retrier

    reminder = Notification(
        notification_id="g-r2",
        kind="repeat",
        group_id="g",
        group_labels={},
        severity="medium",
        alerts=[_alert(i) for i in range(3)],
        created_at=AT,
        alerts_left_out=1_200,
    )
    channel_for(smtp).send(reminder, retrier())
    [mail] = smtp.mails
    text = mail.get_body(("plain",)).get_content()
    assert "... and 1200 more alerts of this group not listed (1200 firing, 0 resolved)" in text
