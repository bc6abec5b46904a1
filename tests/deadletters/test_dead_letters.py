"""Dead letters on the emulators: a poison message goes all the way from its failing subscriber
through Pub/Sub's dead-letter policy to the store, raises one alert and can be re-driven."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from devtools.pubsub_setup import create_topics_and_subscriptions
from shared.topology import load_topology

pytestmark = pytest.mark.emulators
PROJECT = "ion-ops-test"


class _Failing(BaseHTTPRequestHandler):
    """A subscriber that never acknowledges: every push answers 500."""

    pushes = 0

    def log_message(self, *_args: object) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).pushes += 1
        self.send_response(500)
        self.end_headers()


@pytest.fixture
def own_subscriptions(emulators) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The topology's push subscriptions are this test's alone: none left by an earlier test
    (pushing to its port), none left for a later one."""
    from tests.pipeline_rig import drop_topology_subscriptions

    drop_topology_subscriptions()
    yield
    drop_topology_subscriptions()


@pytest.fixture
def failing_subscriber() -> Iterator[str]:
    _Failing.pushes = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _pull_all(subscription: str, wait: float = 20.0) -> list[object]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    deadline = time.monotonic() + wait
    found: list[object] = []
    while time.monotonic() < deadline and not found:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
        for received in response.received_messages:
            found.append(received.message)
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [r.ack_id for r in response.received_messages],
                }
            )
    return found


def _wait_for(url: str, seconds: float = 60.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        letters = requests.get(url, timeout=10).json()["dead_letters"]
        if letters:
            return letters
        time.sleep(0.5)
    raise AssertionError(f"nothing at {url} within {seconds}s")


@pytest.mark.usefixtures("own_subscriptions")
def test_a_poison_alert_reaches_the_store_pages_once_and_is_redriven(  # type: ignore[no-untyped-def]
    fs, emulators, serve_capability, failing_subscriber
) -> None:
    from google.cloud import pubsub_v1

    # With no automatic re-drive (tests/deadletters/test_recovery.py has those), an alert
    # transition Pub/Sub gave up on pages at once, as a letter of any topic outside the pipeline.
    live = serve_capability(
        "deadletters",
        {"ION_DEADLETTERS_URL": "https://ops.example.com/dl", "ION_DEAD_LETTERS_RECOVER_MAX_REDRIVES": "0"},
    )
    topo = load_topology()
    # The real wiring (topics, dead-letter topics, the sink's push subscriptions), with the alert
    # topic's subscriber standing in as a broken fan-out and the delivery bound lowered to 5.
    create_topics_and_subscriptions(
        topo,
        PROJECT,
        lambda cap: live.url if cap == "deadletters" else failing_subscriber,
    )
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.update_subscription(
        request={
            "subscription": {
                "name": subscriber.subscription_path(PROJECT, "alerts-to-fan_out_alerts"),
                "dead_letter_policy": {
                    "dead_letter_topic": publisher.topic_path(PROJECT, "alerts-dead-letter"),
                    "max_delivery_attempts": 5,
                },
            },
            "update_mask": {"paths": ["dead_letter_policy"]},
        }
    )
    watch = subscriber.subscription_path(PROJECT, "alerts-watch")
    subscriber.create_subscription(name=watch, topic=publisher.topic_path(PROJECT, "alerts"))
    publisher.publish(publisher.topic_path(PROJECT, "alerts"), b'{"poison": true}', origin="test").result()
    poison = _pull_all(watch)
    assert [m.data for m in poison] == [b'{"poison": true}']

    letters = _wait_for(f"{live.url}/v1/dead-letters?topic=alerts")
    assert len(letters) == 1
    letter = letters[0]
    assert letter["topic"] == "alerts"
    assert letter["delivery_attempts"] == 5
    assert letter["reason"] == "not acknowledged after 5 delivery attempts"
    assert letter["state"] == "stored"
    assert _Failing.pushes >= 5

    # One critical alert about it, on the alert topic itself, naming the letter and its redrive.
    notices = _pull_all(watch)
    assert len(notices) == 1
    notice = json.loads(notices[0].data)
    assert notice["severity"] == "critical"
    assert notice["rule"] == "deadletters-dead-letter"
    assert notice["labels"]["topic"] == "alerts"
    assert notice["annotations"]["dead_letter_id"] == letter["id"]
    assert notice["dashboard_url"] == f"https://ops.example.com/dl/v1/dead-letters/{letter['id']}"

    whole = requests.get(f"{live.url}/v1/dead-letters/{letter['id']}", timeout=10).json()
    assert whole["data_base64"] == "eyJwb2lzb24iOiB0cnVlfQ=="
    assert whole["automatic"] is False
    # Marked once the notice is published (the notice may reach us first).
    deadline = time.monotonic() + 10
    while not whole["alerted"] and time.monotonic() < deadline:
        time.sleep(0.2)
        whole = requests.get(f"{live.url}/v1/dead-letters/{letter['id']}", timeout=10).json()
    assert whole["alerted"] is True

    redriven = requests.post(f"{live.url}/v1/dead-letters/{letter['id']}/redrive", timeout=10)
    assert redriven.status_code == 200
    assert redriven.json()["state"] == "redriven"
    again = _pull_all(watch)
    poison_again = [m for m in again if m.data == b'{"poison": true}']
    assert len(poison_again) == 1
    assert poison_again[0].attributes["origin"] == "test"
    assert poison_again[0].attributes["redriven_from"] == letter["id"]
    assert poison_again[0].attributes["redrives"] == "1"
    assert not any(k.startswith("CloudPubSubDeadLetter") for k in poison_again[0].attributes)


def test_api_refuses_what_it_cannot_do(fs, emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    from functions.deadletters import letters, store
    from shared.clock import utcnow
    from shared.events import PubSubMessage

    live = serve_capability("deadletters")
    now = utcnow()
    letter = store.store(
        letters.from_message(
            PubSubMessage(
                event_id="e1",
                message_id="42",
                topic="alert-deliveries-dead-letter",
                publish_time=now,
                attributes={"channel": "slack"},
                data=json.dumps({"reason": "Slack answered 403 channel_not_found"}).encode(),
            ),
            now,
        )
    )
    assert letter.reason == "Slack answered 403 channel_not_found"
    listed = requests.get(f"{live.url}/v1/dead-letters?state=stored", timeout=10).json()["dead_letters"]
    assert [d["id"] for d in listed] == ["42"]
    assert "data_base64" not in listed[0]
    # Every topic of the topology has a subscriber now (alert-deliveries: redeliver_alerts); a
    # letter of a topic that no longer has one (retired since) cannot be re-driven.
    store.store(
        letters.from_message(
            PubSubMessage(
                event_id="e2",
                message_id="44",
                topic="retired-dead-letter",
                publish_time=now,
                attributes={},
                data=b"{}",
            ),
            now,
        )
    )
    no_subscriber = requests.post(f"{live.url}/v1/dead-letters/44/redrive", timeout=10)
    assert no_subscriber.status_code == 409
    assert {"alerts", "alert-deliveries"} <= set(no_subscriber.json()["allowed"])
    assert requests.post(f"{live.url}/v1/dead-letters/43/redrive", timeout=10).status_code == 404
    assert requests.get(f"{live.url}/v1/dead-letters/..", timeout=10).status_code == 404
    bad = requests.get(f"{live.url}/v1/dead-letters?state=lost&limit=0", timeout=10)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"state", "limit"}


def test_a_dead_lettered_alert_about_a_dead_letter_is_stored_without_a_new_alert(fs) -> None:  # type: ignore[no-untyped-def]
    from functions.deadletters import letters, store
    from shared.clock import utcnow
    from shared.events import PubSubMessage
    from shared.notices import notice_transition

    now = utcnow()
    own = notice_transition(
        notice_id="dead-letter/7",
        source="deadletters",
        name="dead-letter",
        severity="critical",
        summary="x",
        at=now,
    )
    letter = store.store(
        letters.from_message(
            PubSubMessage(
                event_id="e",
                message_id="8",
                topic="alerts-dead-letter",
                publish_time=now,
                attributes={},
                data=own.model_dump_json().encode(),
            ),
            now,
        )
    )
    assert letters.is_own_alert(letter)
    store.alert(letter)  # no Pub/Sub emulator configured here: publishing would raise
    assert store.get("8").alerted is False


def _letter(message_id: str, topic: str, data: bytes, minutes_ago: int = 0):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from functions.deadletters import letters
    from shared.clock import utcnow
    from shared.events import PubSubMessage

    at = utcnow() - timedelta(minutes=minutes_ago)
    message = PubSubMessage(
        event_id=f"e{message_id}",
        message_id=message_id,
        topic=f"{topic}-dead-letter",
        publish_time=at,
        attributes={"CloudPubSubDeadLetterSourceDeliveryCount": "5"},
        data=data,
    )
    return letters.from_message(message, at)


@pytest.mark.usefixtures("own_subscriptions")
def test_a_message_larger_than_a_document_is_stored_whole_alerted_and_redriven(  # type: ignore[no-untyped-def]
    fs, emulators, serve_capability
) -> None:
    """Pub/Sub carries up to 10 MB; a Firestore field holds 1 MiB. A 2.5 MB letter is kept in
    parts, served whole, and re-driven whole."""
    import base64
    import random

    from google.cloud import pubsub_v1

    from functions.deadletters import store

    live = serve_capability("deadletters")
    create_topics_and_subscriptions(load_topology(), PROJECT, lambda _cap: live.url)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    watch = subscriber.subscription_path(PROJECT, "metrics-watch")
    subscriber.create_subscription(name=watch, topic=publisher.topic_path(PROJECT, "metrics"))
    data = random.Random(5).randbytes(2_500_000)
    stored = store.store(_letter("900", "metrics", data))
    assert stored.data() == data
    assert store.store(_letter("900", "metrics", data)).data() == data  # a redelivery reads it back
    assert len(list(fs.collection(store.PARTS).list_documents())) == 3

    whole = requests.get(f"{live.url}/v1/dead-letters/900", timeout=30).json()
    assert base64.b64decode(whole["data_base64"]) == data
    assert whole["size_bytes"] == 2_500_000
    assert requests.post(f"{live.url}/v1/dead-letters/900/redrive", timeout=30).status_code == 200
    (again,) = _pull_all(watch)
    assert again.data == data


def test_listing_reads_the_newest_letters_without_their_data(fs, emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    from functions.deadletters import store

    live = serve_capability("deadletters")
    for n in range(30):
        store.store(_letter(str(100 + n), "alerts" if n % 3 else "metrics", b"x" * 1000, minutes_ago=n))
    newest = requests.get(f"{live.url}/v1/dead-letters?limit=4", timeout=10).json()["dead_letters"]
    assert [d["id"] for d in newest] == ["100", "101", "102", "103"]
    metrics = requests.get(f"{live.url}/v1/dead-letters?topic=metrics&limit=3", timeout=10).json()
    assert [d["id"] for d in metrics["dead_letters"]] == ["100", "103", "106"]
    assert all("data_base64" not in d for d in metrics["dead_letters"])
    everything = requests.get(f"{live.url}/v1/dead-letters?limit=1000", timeout=10).json()["dead_letters"]
    assert len(everything) == 30


def test_a_message_id_that_is_no_document_id_is_stored_all_the_same(fs) -> None:  # type: ignore[no-untyped-def]
    """Pub/Sub's message ids are digits; anything else (a ``/``) must still be kept, not retried
    for ever by the sink's subscription (it has no dead-letter policy of its own)."""
    from functions.deadletters import store

    letter = store.store(_letter("a/b", "metrics", b"{}"))
    assert letter.id != "a/b"
    assert store.get(letter.id) is not None
    assert store.store(_letter("a/b", "metrics", b"{}")).id == letter.id  # a redelivery: the same
