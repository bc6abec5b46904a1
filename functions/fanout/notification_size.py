"""A notification within one Firestore document: a stored notification (its alerts, the flush's
items) must stay under Firestore's 1 MiB document limit, or the transaction that stores it fails
and its group's alerts never go out (about 1,300 alerts of 800 bytes did that).

A flush carries the alerts that fit and leaves the rest pending, due at once, so the next flush
(the minute tick at the latest) announces them: no transition is lost or announced twice, and a
fingerprint's older transitions wait with its newest, so a later flush never announces an older
state. A reminder (repeat, escalation, unacknowledged) re-announces alerts already announced: it
carries those that fit and counts the others in ``alerts_left_out``, which the channels show.
Sizes are those of the JSON the record stores, a close upper bound of Firestore's own count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from functions.fanout.policy import Plan
from shared.messages import AlertTransition

# A notification's alerts and items at most: the rest of its document (ids, channels, the
# deliveries' journal) stays well inside Firestore's 1,048,576 bytes.
NOTIFICATION_BYTES = 700_000


def alert_bytes(alert: AlertTransition) -> int:
    return len(alert.model_dump_json())


def item_bytes(item: dict[str, Any]) -> int:
    return len(json.dumps(item, default=str))


def split_plan(plan: Plan, budget: int | None = None) -> tuple[Plan, list[str]]:
    """The part of ``plan`` one notification carries, and the transition ids left pending: the
    alerts to notify in order while they fit (one at least), each with every item of its
    fingerprint; the items of other fingerprints (muted, unannounced) always go."""
    budget = NOTIFICATION_BYTES if budget is None else budget
    by_fingerprint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in plan.items:
        by_fingerprint[item["fingerprint"]].append(item)
    notified = {alert.fingerprint for alert in plan.notify}
    used = sum(item_bytes(item) for item in plan.items if item["fingerprint"] not in notified)
    carried: list[AlertTransition] = []
    left: set[str] = set()
    for alert in plan.notify:
        cost = alert_bytes(alert) + sum(map(item_bytes, by_fingerprint[alert.fingerprint]))
        if left or (carried and used + cost > budget):
            left.add(alert.fingerprint)
            continue
        carried.append(alert)
        used += cost
    if not left:
        return plan, []
    items = [item for item in plan.items if item["fingerprint"] not in left]
    pending = [item["transition_id"] for item in plan.items if item["fingerprint"] in left]
    return Plan(items=items, notify=carried), pending


def fit_alerts(alerts: list[AlertTransition], budget: int | None = None) -> tuple[list[AlertTransition], int]:
    """The alerts of a reminder that fit (in order, one at least) and how many are left out."""
    budget = NOTIFICATION_BYTES if budget is None else budget
    used = 0
    for index, alert in enumerate(alerts):
        used += alert_bytes(alert)
        if index and used > budget:
            return alerts[:index], len(alerts) - index
    return alerts, 0
