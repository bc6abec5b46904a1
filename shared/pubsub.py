"""Pub/Sub publishing that runs unchanged on the emulator (PUBSUB_EMULATOR_HOST) and in the cloud.

Publishing blocks until the server acknowledges, with a bound: Cloud Functions throttle CPU once
the response is sent, so a publish left in flight might never leave the instance.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import pubsub_v1


@lru_cache(maxsize=1)
def get_publisher() -> pubsub_v1.PublisherClient:
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


def topic_path(topic: str) -> str:
    return f"projects/{get_settings().project}/topics/{topic}"


def publish(
    topic: str,
    payload: BaseModel | bytes,
    *,
    attributes: dict[str, str] | None = None,
    ordering_key: str = "",
) -> str:
    """Publish one message and wait for its id (raises on failure or timeout)."""
    data = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
    kwargs: dict[str, str] = dict(attributes or {})
    if ordering_key:
        kwargs["ordering_key"] = ordering_key
    future = get_publisher().publish(topic_path(topic), data, **kwargs)
    return str(future.result(timeout=get_settings().publish_timeout_seconds))


def reset_clients() -> None:
    get_publisher.cache_clear()
