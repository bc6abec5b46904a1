"""The alert pipeline wired as deployed, on the emulators: fan-out and the dead-letter store served
by functions-framework (devtools.serve, as `make run` serves them), fed by the topology's own push
subscriptions on the Pub/Sub emulator, with the Slack, PagerDuty and SMTP stand-ins as vendors.
Nothing is called in process: a message goes where Pub/Sub takes it."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from devtools.pubsub_setup import create_topics_and_subscriptions
from shared.topology import load_topology
from tests.conftest import PROJECT
from tests.fanout.conftest import channel_env
from tests.fanout.pagerduty_standin import PagerDutyStandIn, about_alert
from tests.fanout.slack_standin import SlackMessage, SlackStandIn
from tests.fanout.smtp_standin import SmtpServer

T = TypeVar("T")
UNSERVED = "http://127.0.0.1:9"  # capabilities a test does not serve (nothing publishes to them)


def eventually(what: str, check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)


def rewire(
    base_url_of: Callable[[str], str], *, delivery_attempts: int = 5, max_backoff_seconds: int = 2
) -> list[str]:
    """The topology's topics and push subscriptions, made afresh for this test (any left by another
    test are deleted first, with their backlog and endpoints), with Pub/Sub's bounds shrunk:
    ``delivery_attempts`` before a message is dead-lettered (5 is Pub/Sub's least), backoff
    between pushes up to ``max_backoff_seconds``. Returns the subscriptions (``unwire`` them)."""
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    topo = load_topology()
    drop_topology_subscriptions()
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    # Names of their own: the emulator keeps a subscription name's push backoff across a delete
    # and re-create, so one another test left failing (pushing to a closed port) would deliver
    # this test's messages minutes late.
    suffix = f"-{uuid.uuid4().hex[:6]}"
    created = [
        sub for sub, _ in create_topics_and_subscriptions(topo, PROJECT, base_url_of, name_suffix=suffix)
    ]
    for sub in created:
        topic = sub.rsplit("/", 1)[1].split("-to-", 1)[0]
        update: dict[str, Any] = {
            "name": sub,
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(nanos=200_000_000),
                "maximum_backoff": duration_pb2.Duration(seconds=max_backoff_seconds),
            },
        }
        paths = ["retry_policy"]
        if topic in topo.topics:  # a topic's own subscription, dead-lettered after its attempts
            update["dead_letter_policy"] = {
                "dead_letter_topic": publisher.topic_path(PROJECT, f"{topic}-dead-letter"),
                "max_delivery_attempts": delivery_attempts,
            }
            paths.append("dead_letter_policy")
        subscriber.update_subscription(request={"subscription": update, "update_mask": {"paths": paths}})
    subscriber.close()
    return created


def drop_topology_subscriptions() -> None:
    """Delete the topology's push subscriptions on the emulator, with their backlog: one left by
    an earlier test keeps pushing its messages to that test's port, which a later server may get."""
    from google.api_core.exceptions import NotFound
    from google.cloud import pubsub_v1

    topo = load_topology()
    subscriber = pubsub_v1.SubscriberClient()
    names = [f"{t}-to-{fn}" for t in topo.topics for fn in topo.subscribers(t)]
    names += [f"{t}-dead-letter-to-{sink}" for t in topo.topics for sink in topo.dead_letter_sinks()]
    for name in names:
        with contextlib.suppress(NotFound):
            subscriber.delete_subscription(subscription=subscriber.subscription_path(PROJECT, name))
    subscriber.close()


def unwire(subscriptions: list[str]) -> None:
    from google.api_core.exceptions import NotFound
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    for sub in subscriptions:
        with contextlib.suppress(NotFound):
            subscriber.delete_subscription(subscription=sub)
    subscriber.close()


@dataclass
class Pipeline:
    slack: SlackStandIn
    pagerduty: PagerDutyStandIn
    smtp: SmtpServer
    fanout_url: str
    deadletters_url: str
    watches: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        return str(publisher.publish(publisher.topic_path(PROJECT, topic), data, **attributes).result(30))

    def watch(self, topic: str) -> str:
        """A pull subscription of its own on ``topic``: what was published there from now on."""
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        name = subscriber.subscription_path(PROJECT, f"watch-{topic}-{uuid.uuid4().hex[:8]}")
        subscriber.create_subscription(
            request={"name": name, "topic": pubsub_v1.PublisherClient().topic_path(PROJECT, topic)}
        )
        subscriber.close()
        self.watches.append(name)
        return name

    def pulled(self, watch: str, want: int, timeout: float = 30.0) -> list[Any]:
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < want and time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": watch, "max_messages": 100}, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(
                    request={"subscription": watch, "ack_ids": [m.ack_id for m in response.received_messages]}
                )
            found += [m.message for m in response.received_messages]
        subscriber.close()
        return found

    def letters(self, topic: str | None = None) -> list[dict[str, Any]]:
        query = f"?topic={topic}&limit=1000" if topic else "?limit=1000"
        response = requests.get(f"{self.deadletters_url}/v1/dead-letters{query}", timeout=10)
        assert response.status_code == 200, response.text
        return list(response.json()["dead_letters"])

    def letter(self, letter_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.deadletters_url}/v1/dead-letters/{letter_id}", timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def delivery_letter(self, transition_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The stored dead letter of a channel delivery announcing ``transition_id``, and its body."""
        for summary in self.letters("alert-deliveries"):
            body = json.loads(base64.b64decode(self.letter(summary["id"])["data_base64"]))
            if transition_id in body.get("transition_ids", []):
                return summary, body
        return None

    def slack_about(self, text: str) -> list[SlackMessage]:
        return [m for m in list(self.slack.messages) if text in m.all_text()]

    def pagerduty_for(self, fingerprint: str) -> list[dict[str, Any]]:
        """PagerDuty's events about an alert: its group's triggers listing it, or those keyed by
        its fingerprint (a notice; the previous version's one event per alert)."""
        return [e for e in list(self.pagerduty.events) if about_alert(e, fingerprint)]

    def give_up_as_pubsub(self, topic: str, unsent: list[bytes], attributes: dict[str, str]) -> None:
        """Do what Pub/Sub does when a message has used its delivery attempts, for ``unsent``:
        take it off ``topic``'s push subscription (its backlog goes with the subscription, which
        is made again as it was, under a new name: the emulator keeps a name's stalled push state
        across a delete, so the re-driven pages would never be pushed) and publish it to
        ``<topic>-dead-letter`` with the attributes Pub/Sub adds. For the drill, when the emulator
        stalls before its own give-up."""
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        publisher = pubsub_v1.PublisherClient()
        [name] = [sub for sub in self.subscriptions if sub.rsplit("/", 1)[1].startswith(f"{topic}-to-")]
        config = subscriber.get_subscription(subscription=name)
        subscriber.delete_subscription(subscription=name)
        config.name = f"{name}-{uuid.uuid4().hex[:6]}"
        subscriber.create_subscription(request=config)
        self.subscriptions[self.subscriptions.index(name)] = config.name
        for data in unsent:
            publisher.publish(
                publisher.topic_path(PROJECT, f"{topic}-dead-letter"),
                data,
                **attributes,
                CloudPubSubDeadLetterSourceDeliveryCount="5",
                CloudPubSubDeadLetterSourceSubscription=name.rsplit("/", 1)[1],
                CloudPubSubDeadLetterSourceSubscriptionProject=PROJECT,
            ).result(30)
        subscriber.close()

    def publish_again(self, topic: str, messages: list[Any]) -> None:
        """Publish pulled ``messages`` to ``topic`` again, data and attributes as they were (a
        redelivery, under a new message id)."""
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        for message in messages:
            publisher.publish(
                publisher.topic_path(PROJECT, topic), message.data, **dict(message.attributes)
            ).result(30)

    def close(self) -> None:
        unwire(self.watches)


def pipeline_env(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn, smtp: SmtpServer, outbox: Path, **extra: str
) -> dict[str, str]:
    """What the served functions run with: the vendors' stand-ins and shrunk retry budgets."""
    return {
        **channel_env(slack, pagerduty, smtp, outbox),
        "ION_FANOUT_RETRY_BUDGET_SECONDS": "2",
        "ION_FANOUT_MAX_ATTEMPTS": "3",
        **extra,
    }


@dataclass
class Vendors:
    slack: SlackStandIn
    pagerduty: PagerDutyStandIn
    smtp: SmtpServer


@contextlib.contextmanager
def vendor_standins() -> Iterator[Vendors]:
    slack, pagerduty, smtp = SlackStandIn(), PagerDutyStandIn(), SmtpServer()
    try:
        yield Vendors(slack, pagerduty, smtp)
    finally:
        slack.close()
        pagerduty.close()
        smtp.close()


def warm(url: str) -> None:
    """A deep health check: the served function imports and makes its Firestore and Pub/Sub
    clients now. Cold, on a loaded machine, that takes seconds per hop, which the first message
    through two hops would otherwise spend inside the drill's waits."""
    answer = requests.get(f"{url}/health?deep=true", timeout=120)
    assert answer.status_code == 200, answer.text


@contextlib.contextmanager
def served_pipeline(
    serve: Callable[..., Any], vendors: Vendors, outbox: Path, **extra: str
) -> Iterator[Pipeline]:
    """Fan-out and the dead-letter store served with ``extra`` settings, wired afresh."""
    env = pipeline_env(vendors.slack, vendors.pagerduty, vendors.smtp, outbox, **extra)
    fanout = serve("fanout", env)
    deadletters = serve("deadletters", env)
    urls = {"fanout": fanout.url, "deadletters": deadletters.url}
    subscriptions = rewire(lambda capability: urls.get(capability, UNSERVED))
    for url in urls.values():
        warm(url)
    pipeline = Pipeline(
        vendors.slack,
        vendors.pagerduty,
        vendors.smtp,
        fanout.url,
        deadletters.url,
        subscriptions=subscriptions,
    )
    try:
        yield pipeline
    finally:
        pipeline.close()
        unwire(subscriptions)


def transition_json(transition: Any, **changes: Any) -> bytes:
    """A transition as a producer publishes it, with ``changes`` (a field this fan-out does not
    know how to read, say)."""
    return json.dumps({**transition.model_dump(mode="json"), **changes}).encode()


class Scheduler:
    """Cloud Scheduler for the drill, with time compressed: the jobs that keep the pipeline going
    by themselves (fan-out's flush tick, the dead-letter recovery run), every ``every`` seconds
    instead of every minute, each as Cloud Scheduler calls it. It never stops for an outage."""

    def __init__(self, pipeline: Pipeline, every: float = 1.0) -> None:
        self.jobs = [
            (f"{pipeline.fanout_url}/v1/flush", "fanout-flush"),
            (f"{pipeline.deadletters_url}/v1/recover", "deadletters-recover"),
        ]
        self.every = every
        self.runs = 0
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="drill-scheduler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for url, job in self.jobs:
                try:
                    answer = requests.post(url, headers={"X-CloudScheduler-JobName": job}, timeout=60)
                    self.statuses.append(answer.status_code)
                except requests.RequestException:
                    self.statuses.append(0)
            with self._ran:
                self.runs += 1
                self._ran.notify_all()
            self._stop.wait(self.every)

    def wait_runs(self, count: int, timeout: float = 120.0) -> None:
        """Until ``count`` more whole rounds of the jobs have run."""
        with self._ran:
            target = self.runs + count
            if not self._ran.wait_for(lambda: self.runs >= target, timeout):
                raise AssertionError(f"the scheduler did not run {count} rounds within {timeout:.0f}s")

    def __enter__(self) -> Scheduler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(90)
