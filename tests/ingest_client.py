"""The ingestion function's app as a test client, with the topics its writes publish to: for
tests of other capabilities that need metrics written as production writes them."""

from __future__ import annotations

import contextlib
from typing import Any

import functions_framework

from shared.topology import ROOT

TOPICS = ("metric-updates", "metrics")


def ingest_client(project: str) -> Any:
    """A Flask test client of `ingest` (the root main.py), its topics made in ``project``."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    for name in TOPICS:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(project, name))
    return functions_framework.create_app("ingest", str(ROOT / "main.py"), "http").test_client()
