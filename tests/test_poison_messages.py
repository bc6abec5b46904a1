"""Poison messages on every push-fed handler, on the emulators: a message no retry can make
readable is acknowledged (never retried for ever) but never unread: it goes to its topic's
dead-letter topic with the reason, where the dead-letter store keeps it and pages, once, however
often Pub/Sub delivers it."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest

from shared.topology import ROOT, load_topology
from tests.conftest import PROJECT
from tests.pubsub_helpers import pull_acknowledged, push_envelope

pytestmark = pytest.mark.emulators
BUDGET_ATTRS = {"billingAccountId": "0A1B2C-3D4E5F-6A7B8C", "budgetId": "b-123", "schemaVersion": "1.0"}


@pytest.fixture
def wired(fs, emulators) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """The topology's topics (and dead-letter topics); the watch subscriptions a test makes are
    deleted after it. Push subscriptions point nowhere: the tests push by hand."""
    from google.api_core.exceptions import NotFound
    from google.cloud import pubsub_v1

    from devtools.pubsub_setup import create_topics_and_subscriptions
    from shared import pubsub
    from tests.pipeline_rig import drop_topology_subscriptions

    pubsub.reset_clients()
    drop_topology_subscriptions()
    create_topics_and_subscriptions(load_topology(), PROJECT, lambda _cap: "http://127.0.0.1:9")
    drop_topology_subscriptions()
    watches: list[str] = []
    yield watches
    subscriber = pubsub_v1.SubscriberClient()
    for name in watches:
        with contextlib.suppress(NotFound):
            subscriber.delete_subscription(subscription=name)
    subscriber.close()


def watch(watches: list[str], topic: str) -> str:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    name = subscriber.subscription_path(PROJECT, f"{topic}-watch-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=name, topic=f"projects/{PROJECT}/topics/{topic}")
    watches.append(name)
    return name


def pulled(subscription: str, want: int | None = None, quiet: float = 3.0) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:
        return pull_acknowledged(subscriber, subscription, quiet_seconds=quiet, want=want)
    finally:
        subscriber.close()


def push(target: str, topic: str, data: bytes, attributes: dict[str, str], message_id: str) -> Any:
    app = functions_framework.create_app(target, str(ROOT / "main.py"))
    envelope = push_envelope(data, message_id=message_id, attributes=attributes)
    return app.test_client().post(f"/projects/{PROJECT}/topics/{topic}", json=envelope)


POISON = [
    pytest.param("ingest_pubsub", "metrics", b"\x0a\xff\xff", {"content_type": "application/x-protobuf"}, id="metrics-not-protobuf"),
    pytest.param("ingest_pubsub", "metrics", b"{not json", {"content_type": "application/json"}, id="metrics-not-json"),
    pytest.param("evaluate_alerts_on_ingest", "metric-updates", b'{"metrics": 3}', {}, id="metric-updates-wrong-schema"),
    pytest.param("evaluate_alerts_on_ingest", "metric-updates", b"\xff\xfe", {}, id="metric-updates-not-json"),
    pytest.param("snapshot_cost_budget", "budget-notifications", b"not json", BUDGET_ATTRS, id="budget-not-json"),
    pytest.param("snapshot_cost_budget", "budget-notifications", b"{}", {"budgetId": "b-1"}, id="budget-missing-attributes"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "topic", "data", "attributes"), POISON)
def test_a_poison_message_is_acked_and_dead_lettered_with_its_reason(  # type: ignore[no-untyped-def]
    wired, target: str, topic: str, data: bytes, attributes: dict[str, str]
) -> None:
    letters = watch(wired, f"{topic}-dead-letter")
    answer = push(target, topic, data, attributes, message_id="p-1")
    assert answer.status_code == 200  # acknowledged: no retry can help
    [letter] = pulled(letters, want=1)
    assert letter.data == data
    assert letter.attributes["recoverable"] == "false"  # the store pages, never re-drives by itself
    assert letter.attributes["reason"]
    for key, value in attributes.items():
        assert letter.attributes[key] == value


def test_the_same_poison_message_delivered_twice_is_one_letter_and_one_page(wired, fs) -> None:  # type: ignore[no-untyped-def]
    """The ack of a poison message is lost after it was dead-lettered (the instance died, the
    answer timed out): Pub/Sub delivers it again and the consumer dead-letters it again. The
    store keeps one letter and pages once."""
    from functions.deadletters.store import DEAD_LETTERS

    letters, notices = watch(wired, "alerts-dead-letter"), watch(wired, "alerts")
    for _ in range(2):  # the same message id: a redelivery
        assert (
            push("fan_out_alerts", "alerts", b'{"poison": true}', {"origin": "t"}, "p-9").status_code == 200
        )
    dead = pulled(letters, want=2)
    assert len(dead) == 2  # published twice: publishing is at least once too
    for message in dead:
        answer = push(
            "store_dead_letters",
            "alerts-dead-letter",
            message.data,
            dict(message.attributes),
            message.message_id,
        )
        assert answer.status_code == 200
    stored = [d.to_dict() for d in fs.collection(DEAD_LETTERS).stream()]
    assert len(stored) == 1, [s["id"] for s in stored]
    pages = [json.loads(m.data) for m in pulled(notices)]
    assert [p["rule"] for p in pages] == ["deadletters-dead-letter"]


def test_copies_of_one_letter_stored_at_once_by_two_instances_are_one_letter_and_one_page(wired, fs) -> None:  # type: ignore[no-untyped-def]
    """Both copies of a dead-lettered message reach two instances of the store at the same time:
    one letter, and whatever both publish is one notice (its id is the letter's: fan-out sends
    each notice id once)."""
    import threading

    from functions.deadletters.store import DEAD_LETTERS

    letters, notices = watch(wired, "metrics-dead-letter"), watch(wired, "alerts")
    for _ in range(2):
        push("ingest_pubsub", "metrics", b"{not json", {"content_type": "application/json"}, "p-7")
    dead = pulled(letters, want=2)
    assert len(dead) == 2
    start = threading.Barrier(2)
    answers: list[int] = []

    def store(message: Any) -> None:
        start.wait()
        answer = push(
            "store_dead_letters",
            "metrics-dead-letter",
            message.data,
            dict(message.attributes),
            message.message_id,
        )
        answers.append(answer.status_code)

    threads = [threading.Thread(target=store, args=(m,)) for m in dead]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    assert len(list(fs.collection(DEAD_LETTERS).stream())) == 1
    pages = [json.loads(m.data) for m in pulled(notices)]
    assert pages
    assert {p["transition_id"] for p in pages} == {pages[0]["transition_id"]}
    assert {p["rule"] for p in pages} == {"deadletters-dead-letter"}


NEWER_SCHEMA = [
    pytest.param("fan_out_alerts", "alerts", id="alerts"),
    pytest.param("redeliver_alerts", "alert-deliveries", id="alert-deliveries"),
    pytest.param("evaluate_alerts_on_ingest", "metric-updates", id="metric-updates"),
]


@pytest.mark.parametrize(("target", "topic"), NEWER_SCHEMA)
def test_a_message_of_a_newer_schema_version_is_dead_lettered_recoverable_never_misread(  # type: ignore[no-untyped-def]
    wired, fs, target: str, topic: str
) -> None:
    """A producer deployed before its consumer publishes a version whose fields changed meaning:
    the consumer does not read it as the version it knows; it goes to the dead-letter store with
    the reason, recoverable, so a re-drive once the consumer is deployed delivers it."""
    from functions.deadletters.store import DEAD_LETTERS

    letters = watch(wired, f"{topic}-dead-letter")
    data = json.dumps({"schema_version": 2, "meaning": "changed"}).encode()
    # Re-driven twice already: still too new for this consumer, it counts as a third failure, so a
    # consumer that stays old is paged about it after the recovery's bound, not re-driven forever.
    answer = push(target, topic, data, {"origin": "t", "redrives": "2"}, message_id="v-2")
    assert answer.status_code == 200
    [letter] = pulled(letters, want=1)
    assert letter.data == data
    assert "schema_version 2 is newer" in letter.attributes["reason"]
    assert letter.attributes["recoverable"] == "true"
    assert letter.attributes["redrives"] == "2"
    stored = push("store_dead_letters", f"{topic}-dead-letter", letter.data, dict(letter.attributes), "v-2")
    assert stored.status_code == 200
    [kept] = [d.to_dict() for d in fs.collection(DEAD_LETTERS).stream()]
    assert kept["recoverable"] is True
    assert kept["redrives"] == 2
    assert kept["automatic"] is (topic != "metric-updates")  # the pipeline re-drives its own by itself
