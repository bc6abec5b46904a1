"""Fixtures of the reports tests: settings reset per test, a frozen clock, seeded history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devtools.emulators import reset_firestore
from functions.reports import audiences, panels, render
from functions.reports.service import view_cache
from functions.reports.settings import get_reports_settings
from shared import clock

# A Wednesday; the previous ISO week is 2026-W46 (Mon 9 Nov to Sun 15 Nov).
NOW = datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _reports_isolated() -> Iterator[None]:
    get_reports_settings.cache_clear()
    panels.load_catalog.cache_clear()
    audiences.load_audiences.cache_clear()
    view_cache.cache_clear()
    yield
    get_reports_settings.cache_clear()
    panels.load_catalog.cache_clear()
    view_cache.cache_clear()
    render.templates.cache_clear()


@pytest.fixture
def fs(emulators):  # type: ignore[no-untyped-def]
    """The suite's ``fs``, patient with an emulator still warming up on a loaded machine (its
    first reset can take longer than the suite's 10 s)."""
    from shared import firestore
    from tests.conftest import _reset_caches

    for attempt in range(6):
        try:
            reset_firestore(emulators.firestore_host, emulators.project)
            break
        except OSError:
            if attempt == 5:
                raise
            time.sleep(2)
    _reset_caches()
    # The writer remembers which series it registered; the emptied database does not.
    from functions.ingestion.known_series import reset as reset_writer_caches

    reset_writer_caches()
    return firestore.get_firestore()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(NOW)
    previous = clock.set_clock(frozen)
    yield frozen
    clock.set_clock(previous)


def minutes(end: datetime, count: int) -> list[datetime]:
    start = end.replace(second=0, microsecond=0) - timedelta(minutes=count)
    return [start + timedelta(minutes=i) for i in range(count)]
