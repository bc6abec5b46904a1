"""The evaluator on the Firestore emulator: every rule kind, the state machine under a frozen
clock, two evaluations racing, and transitions published to the emulator's `alerts` topic."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import pytest

from functions.alerts.engine import Evaluator
from functions.alerts.source import ReplaySource
from functions.alerts.state_store import OUTBOX_COLLECTION, FirestoreStateStore, MemoryStateStore
from shared import clock
from shared.clock import FrozenClock, utcnow
from shared.messages import AlertTransition
from tests.alerts.helpers import T0, noise, rule, times

pytestmark = pytest.mark.emulators
M = timedelta(minutes=1)


def minutes(values: list[float], labels: dict[str, str] | None = None, metric: str = "m") -> ReplaySource:
    source = ReplaySource()
    source.add(metric, labels or {}, zip(times(len(values), 60), values, strict=True))
    return source


def test_threshold_state_machine_for_keep_firing_and_hysteresis(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, clear_threshold=6, window="1m", **{"for": "2m"}, keep_firing_for="2m")
    #         0  1   2   3   4   5  6  7  8  9 10 11
    values = [5, 12, 12, 12, 12, 8, 8, 5, 5, 5, 5, 5]
    frozen = FrozenClock(T0)
    clock.set_clock(frozen)
    store = FirestoreStateStore()
    evaluator = Evaluator(minutes(values), store)
    seen: list[tuple[int, str, str]] = []
    states = []
    for i in range(len(values)):
        frozen.set(T0 + i * M)
        for t in evaluator.run([r], utcnow()).transitions:
            seen.append((i, t.previous_state, t.state))
        snap = store.snapshot("r")
        states.append(next(iter(snap.values())).state if snap else "inactive")
    # pending at 1, fires 2 minutes later (3); 8 is inside the hysteresis band (above 6), so it
    # is last active at 6; cleared at 7, kept firing for 2m after 6 -> resolved at 8.
    assert states == [
        "inactive",
        "pending",
        "pending",
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "resolved",
        "resolved",
        "resolved",
        "resolved",
    ]
    assert seen == [(3, "pending", "firing"), (8, "firing", "resolved")]
    outbox = [d.to_dict() for d in fs.collection(OUTBOX_COLLECTION).stream()]
    assert len(outbox) == 2
    assert {d["transition"]["state"] for d in outbox} == {"firing", "resolved"}
    firing = AlertTransition.model_validate(
        next(d for d in outbox if d["transition"]["state"] == "firing")["transition"]
    )
    assert firing.starts_at == T0 + 3 * M
    assert firing.value == 12
    assert firing.threshold == 10
    assert firing.annotations["summary"] == "value 12"
    assert firing.transition_id == f"{firing.fingerprint}-1"


def test_a_blip_shorter_than_for_never_fires(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", **{"for": "3m"})
    values = [12, 12, 5, 12, 12, 5, 5]
    evaluator = Evaluator(minutes(values), FirestoreStateStore())
    fired = [t for i in range(len(values)) for t in evaluator.run([r], T0 + i * M).transitions]
    assert fired == []


def test_an_older_evaluation_never_undoes_a_newer_one(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m")
    evaluator = Evaluator(minutes([12, 12, 5, 5]), FirestoreStateStore())
    assert [t.state for t in evaluator.run([r], T0 + 1 * M).transitions] == ["firing"]
    assert evaluator.run([r], T0 + 3 * M).transitions[0].state == "resolved"
    assert evaluator.run([r], T0 + 1 * M).transitions == []  # late, stale evaluation: ignored


def test_two_evaluations_at_once_make_one_transition(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    source = ReplaySource()
    for region in ("us", "eu", "asia"):
        source.add("m", {"region": region}, zip(times(3, 60), [12.0, 12.0, 12.0], strict=True))
    barrier = threading.Barrier(4)
    results: list[list[AlertTransition]] = []
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            evaluator = Evaluator(source, FirestoreStateStore())
            barrier.wait()
            results.append(evaluator.run([r], T0 + 2 * M).transitions)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    moved = [t for batch in results for t in batch]
    assert sorted(t.labels["region"] for t in moved) == ["asia", "eu", "us"]
    assert len(list(fs.collection(OUTBOX_COLLECTION).stream())) == 3


def test_ratio_threshold_error_rate_by_region(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(
        agg="count",
        op=">",
        threshold=0.01,
        window="5m",
        group_by=["region"],
        ratio={"numerator": {"present": ["error.type"]}},
        metric="http",
    )
    source = ReplaySource()
    ts = times(300, 1)  # one request a second for five minutes, per region and outcome
    source.add("http", {"region": "us", "error.type": ""}, zip(ts, [0.01] * 300, strict=True))
    source.add("http", {"region": "us", "error.type": "500"}, zip(ts[:6], [0.3] * 6, strict=True))  # 6/306
    source.add("http", {"region": "eu"}, zip(ts, [0.01] * 300, strict=True))
    source.add(
        "http", {"region": "eu", "error.type": "timeout"}, zip(ts[:2], [1.0] * 2, strict=True)
    )  # 2/302
    moved = Evaluator(source, FirestoreStateStore()).run([r], T0 + timedelta(seconds=299)).transitions
    assert [(t.labels["region"], round(t.value or 0, 4)) for t in moved] == [("us", round(6 / 306, 4))]


def test_absence_fires_for_a_series_that_went_quiet(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(kind="absence", window="2m", lookback="30m", group_by=["region"])
    source = ReplaySource()
    source.add("m", {"region": "us"}, zip(times(20, 60), [1.0] * 20, strict=True))
    source.add("m", {"region": "eu"}, zip(times(10, 60), [1.0] * 10, strict=True))  # stops at minute 9
    evaluator = Evaluator(source, FirestoreStateStore())
    assert evaluator.run([r], T0 + 10 * M).transitions == []
    moved = evaluator.run([r], T0 + 12 * M).transitions
    assert [(t.labels, t.state, t.kind) for t in moved] == [({"region": "eu"}, "firing", "absence")]
    # A label set never seen is not "absent": nothing fires for asia.
    assert all(t.labels.get("region") != "asia" for t in evaluator.run([r], T0 + 13 * M).transitions)


def test_trend_fires_on_fast_relative_growth(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(kind="trend", window="5m", over="30m", op=">", threshold=0.5, agg="avg")
    values = [100.0] * 40 + [100.0 + 10 * i for i in range(1, 21)]
    evaluator = Evaluator(minutes(values), FirestoreStateStore())
    assert evaluator.run([r], T0 + 39 * M).transitions == []
    moved = evaluator.run([r], T0 + 50 * M).transitions
    assert moved
    assert moved[0].state == "firing"
    assert moved[0].value > 0.5


def test_slo_burn_rate_needs_both_windows_over(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(
        kind="slo_burn_rate",
        objective=0.999,
        ratio={"numerator": {"present": ["error.type"]}},
        burn_windows=[{"long": "1h", "short": "5m", "factor": 14.4}],
    )
    ts = times(120, 60)
    source = ReplaySource()
    source.add("m", {}, zip(ts, [1.0] * 120, strict=True))  # 1 good request a minute
    # 3% errors during minutes 30..59 (burn 30x), none afterwards.
    source.add("m", {"error.type": "500"}, zip(ts[30:60], [1.0] * 30, strict=True))
    source.add("m", {}, zip([t + timedelta(seconds=1) for t in ts[30:60]] * 31, [1.0] * 930, strict=True))
    evaluator = Evaluator(source, FirestoreStateStore())
    fired = evaluator.run([r], T0 + 50 * M).transitions
    assert [t.state for t in fired] == ["firing"]
    assert fired[0].threshold == 14.4
    # At minute 70 the 1h window is still over 14.4x, the 5m window is clean: resolved.
    assert [t.state for t in evaluator.run([r], T0 + 70 * M).transitions] == ["resolved"]


def test_anomaly_rule_learns_and_fires_on_a_level_shift() -> None:
    r = rule(kind="anomaly", step="5m", history="7d")
    values = noise(1200, seed=3) + [v + 25 for v in noise(100, seed=4)]
    source = ReplaySource()
    source.add("m", {}, zip(times(1300, 300), values, strict=True))
    store = MemoryStateStore()
    evaluator = Evaluator(source, store)
    for i in range(0, 1300, 3):  # evaluations every 15 min: each feeds only the new steps
        evaluator.run([r], T0 + timedelta(seconds=300 * i + 301))
    firing = [t for t in store.transitions if t.state == "firing"]
    assert len(firing) == 1
    assert T0 + timedelta(seconds=300 * 1200) <= firing[0].starts_at <= T0 + timedelta(seconds=300 * 1215)


def test_transitions_are_published_to_the_alerts_topic(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    from functions.alerts.main import _publisher

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(emulators.project, "alerts")
    sub = subscriber.subscription_path(emulators.project, f"alerts-test-{time.monotonic_ns()}")
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic)
    try:
        r = rule(op=">", threshold=10, window="1m", severity="critical", labels={"team": "sre"})
        store = FirestoreStateStore()
        evaluator = Evaluator(minutes([12, 12, 5]), store, _publisher(store))
        evaluator.run([r], T0 + 1 * M)
        evaluator.run([r], T0 + 2 * M)
        received: list[AlertTransition] = []
        deadline = time.monotonic() + 20
        while len(received) < 2 and time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": sub, "max_messages": 10}, timeout=5)
            for msg in response.received_messages:
                received.append(AlertTransition.model_validate_json(msg.message.data))
                assert msg.message.attributes["severity"] == "critical"
            if response.received_messages:
                subscriber.acknowledge(
                    request={"subscription": sub, "ack_ids": [m.ack_id for m in response.received_messages]}
                )
        assert [(t.state, t.previous_state) for t in received] == [
            ("firing", "inactive"),
            ("resolved", "firing"),
        ]
        assert received[0].fingerprint == received[1].fingerprint
        assert received[0].transition_id != received[1].transition_id
        assert received[0].labels == {"team": "sre"}
        assert received[0].severity == "critical"
        assert all(d.to_dict()["published"] for d in fs.collection(OUTBOX_COLLECTION).stream())
    finally:
        subscriber.delete_subscription(subscription=sub)


def test_absence_counts_points_whatever_the_rules_agg(fs) -> None:  # type: ignore[no-untyped-def]
    # A queue-depth gauge: "idle" reports 0 every minute (present), "gone" reported 0 then stopped.
    r = rule(kind="absence", window="2m", lookback="30m", group_by=["queue"], agg="max")
    source = ReplaySource()
    source.add(
        "m", {"queue": "idle"}, zip(times(20, 60), [3.0] * 10 + [0.0] * 10, strict=True), increments=False
    )
    source.add("m", {"queue": "gone"}, zip(times(10, 60), [0.0] * 10, strict=True), increments=False)
    evaluator = Evaluator(source, FirestoreStateStore())
    assert evaluator.run([r], T0 + 9 * M).transitions == []
    moved = evaluator.run([r], T0 + 13 * M).transitions
    assert [(t.labels, t.state, t.value) for t in moved] == [({"queue": "gone"}, "firing", 0.0)]
    assert evaluator.run([r], T0 + 19 * M).transitions == []


def test_an_absence_alert_stays_firing_past_lookback_until_a_point_comes_back(fs) -> None:  # type: ignore[no-untyped-def]
    r = rule(kind="absence", window="2m", lookback="10m", group_by=["region"])
    source = ReplaySource()
    back = times(5, 60, T0 + 30 * M)
    source.add("m", {"region": "eu"}, zip(times(10, 60) + back, [1.0] * 15, strict=True))  # quiet 10..29
    evaluator = Evaluator(source, FirestoreStateStore())
    assert [t.state for t in evaluator.run([r], T0 + 12 * M).transitions] == ["firing"]
    # Past lookback the region has still served nothing: the page is not resolved for it.
    assert evaluator.run([r], T0 + 25 * M).transitions == []
    moved = evaluator.run([r], T0 + 31 * M).transitions
    assert [(t.labels, t.state) for t in moved] == [({"region": "eu"}, "resolved")]
