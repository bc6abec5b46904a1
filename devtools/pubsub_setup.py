"""Create the topology's topics, dead-letter topics and push subscriptions on the Pub/Sub emulator,
pushing to the local functions at the same path they are pushed to when deployed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from shared.topology import Topology


def push_endpoint(base_url: str, project: str, topic: str) -> str:
    return f"{base_url}/projects/{project}/topics/{topic}"


def create_topics_and_subscriptions(
    topo: Topology, project: str, base_url_of: Callable[[str], str], *, name_suffix: str = ""
) -> list[tuple[str, str]]:
    """Idempotent. ``base_url_of(capability)`` is where that capability is served; each
    subscription is named ``<topic>-to-<function><name_suffix>``.

    Returns (subscription, push endpoint) pairs.
    """
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    created: list[tuple[str, str]] = []

    def push(topic: str, fn_name: str, capability: str, ack_deadline: int, **policy: object) -> None:
        endpoint = push_endpoint(base_url_of(capability), project, topic)
        subscription = subscriber.subscription_path(project, f"{topic}-to-{fn_name}{name_suffix}")
        request = {
            "name": subscription,
            "topic": publisher.topic_path(project, topic),
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": ack_deadline,
            **policy,
        }
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(request=request)
        created.append((subscription, endpoint))

    def backoff(max_seconds: int) -> dict[str, object]:
        return {
            "minimum_backoff": duration_pb2.Duration(seconds=1),
            "maximum_backoff": duration_pb2.Duration(seconds=max_seconds),
        }

    try:
        for topic_name, topic in topo.topics.items():
            dead_letter_topic = f"{topic_name}-dead-letter"
            for name in (topic_name, dead_letter_topic):
                with contextlib.suppress(AlreadyExists):
                    publisher.create_topic(name=publisher.topic_path(project, name))
            for fn_name, fn in topo.subscribers(topic_name).items():
                push(
                    topic_name,
                    fn_name,
                    fn.capability,
                    topic.ack_deadline_seconds,
                    retry_policy=backoff(60),
                    dead_letter_policy={
                        "dead_letter_topic": publisher.topic_path(project, dead_letter_topic),
                        "max_delivery_attempts": topic.max_delivery_attempts,
                    },
                )
            # Dead letters are pushed to the sink with retries but no dead-letter policy of their
            # own: a message the sink cannot store stays on the topic (7 days) and is retried.
            for fn_name, fn in topo.dead_letter_sinks().items():
                push(
                    dead_letter_topic,
                    fn_name,
                    fn.capability,
                    topic.ack_deadline_seconds,
                    retry_policy=backoff(600),
                )
    finally:
        subscriber.close()
    return created


def create_topics(topo: Topology, project: str, emulator_host: str) -> None:
    """Only the topics and their dead-letter topics (idempotent), on the emulator at ``emulator_host``."""
    import os

    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    # The client takes the emulator (plain gRPC, no credentials) only from the environment.
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator_host
    try:
        publisher = pubsub_v1.PublisherClient()
        for topic_name in topo.topics:
            for name in (topic_name, f"{topic_name}-dead-letter"):
                with contextlib.suppress(AlreadyExists):
                    publisher.create_topic(name=publisher.topic_path(project, name), timeout=30)
    finally:
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved
