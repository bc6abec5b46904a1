"""Ingestion fixtures: a clean store, ingestion settings re-read per test, a Flask client of the
real ``ingest`` entry point, and the metric-updates topic on the Pub/Sub emulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import functions_framework
import pytest

from shared.clock import FrozenClock, set_clock
from shared.topology import ROOT

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def _reset() -> None:
    from functions.ingestion import known_series
    from functions.ingestion.settings import get_ingestion_settings

    get_ingestion_settings.cache_clear()
    known_series.reset()


@pytest.fixture(autouse=True)
def _ingestion_isolated() -> Iterator[None]:
    _reset()
    yield
    _reset()


@pytest.fixture
def topics(emulators) -> list[str]:  # type: ignore[no-untyped-def]
    """The topics ingestion publishes to, created on the emulator (idempotent)."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    names = ["metric-updates", "metrics", "metrics-dead-letter"]
    for name in names:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(emulators.project, name))
    return names


@pytest.fixture
def store(fs, topics):  # type: ignore[no-untyped-def]
    """An emptied Firestore with the topics in place, and the clock frozen at NOW."""
    set_clock(FrozenClock(NOW))
    _reset()
    return fs


@pytest.fixture
def client(store):  # type: ignore[no-untyped-def]
    app = functions_framework.create_app("ingest", str(ROOT / "main.py"), "http")
    return app.test_client()
