"""One build of a dashboard per refresh slot, shared by every format and every instance."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from functions.reports.view_cache import FirestoreSharedViews, MemorySharedViews, ViewCache, refresh_slot
from functions.reports.views import DashboardView

NOW = datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC)


class Builds:
    """Counts builds; each build takes ``seconds`` (a cold build's Firestore round trips)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.count = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def of(self, now: datetime, name: str = "overview") -> DashboardView:
        with self._lock:
            self.count += 1
        if self.seconds:
            threading.Event().wait(self.seconds)
        return DashboardView(
            name=name,
            title=name.title(),
            description="",
            window="7d",
            region=None,
            start=now - timedelta(days=7),
            end=now,
            step_seconds=3600,
            refresh_seconds=60,
            generated_at=now,
            status="ok",
            panels=[],
        )


def ask(cache: ViewCache, builds: Builds, now: datetime, refresh: int = 60) -> tuple[DashboardView, str]:
    return cache.view(
        name="overview",
        window="7d",
        region=None,
        refresh_seconds=refresh,
        now=now,
        build=lambda: builds.of(now),
    )


def test_an_instance_reuses_its_view_for_the_refresh_interval_then_rebuilds() -> None:
    builds, cache = Builds(), ViewCache(MemorySharedViews())
    assert ask(cache, builds, NOW)[1] == "miss"
    assert ask(cache, builds, NOW + timedelta(seconds=59))[1] == "hit"  # even past the slot's end
    assert builds.count == 1
    view, state = ask(cache, builds, NOW + timedelta(seconds=61))
    assert (state, builds.count) == ("miss", 2)
    assert view.generated_at == NOW + timedelta(seconds=61)


def test_other_instances_read_the_built_view_instead_of_building() -> None:
    shared, builds = MemorySharedViews(), Builds()
    first, second, third = (ViewCache(shared) for _ in range(3))
    built, state = ask(first, builds, NOW)
    assert state == "miss"
    for other in (second, third):
        view, state = ask(other, builds, NOW + timedelta(seconds=5))
        assert state == "shared"
        assert view == built
    assert builds.count == 1
    # The next slot is built again, once.
    later = NOW + timedelta(seconds=60)
    assert refresh_slot(later, 60) == refresh_slot(NOW, 60) + 1
    assert ask(second, builds, later)[1] == "miss"
    assert ask(third, builds, later + timedelta(seconds=1))[1] == "shared"
    assert builds.count == 2


def test_instances_missing_at_once_build_once() -> None:
    shared, builds = MemorySharedViews(), Builds(seconds=0.3)
    caches = [ViewCache(shared) for _ in range(4)]
    states: list[str] = []
    threads = [threading.Thread(target=lambda c=c: states.append(ask(c, builds, NOW)[1])) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds.count == 1
    assert sorted(states) == ["miss", "shared", "shared", "shared"]


def test_requests_of_one_instance_at_once_build_once() -> None:
    builds, cache = Builds(seconds=0.3), ViewCache(MemorySharedViews())
    states: list[str] = []
    threads = [threading.Thread(target=lambda: states.append(ask(cache, builds, NOW)[1])) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds.count == 1
    assert sorted(states) == ["hit"] * 4 + ["miss"]


def test_a_builder_that_never_delivers_costs_a_bounded_wait_not_an_answer() -> None:
    shared, builds = MemorySharedViews(), Builds()
    key_holder = ViewCache(shared)
    # Another instance took the slot's lease and died before sharing its view.
    from functions.reports.view_cache import view_key

    slot = refresh_slot(NOW, 60)
    assert shared.lease(view_key("overview", "7d", None, slot), NOW, NOW + timedelta(minutes=5))
    waiting = ViewCache(shared, wait_seconds=0.3)
    view, state = ask(waiting, builds, NOW)
    assert (state, builds.count) == ("miss", 1)
    assert view.name == "overview"
    assert ask(key_holder, builds, NOW)[1] == "shared"  # and the view it built is shared


def test_a_shared_store_that_fails_costs_a_build() -> None:
    class Broken(MemorySharedViews):
        def get(self, key: str, now: datetime) -> DashboardView | None:
            raise OSError("Firestore unavailable")

    builds = Builds()
    assert ask(ViewCache(Broken()), builds, NOW)[1] == "miss"
    assert builds.count == 1


@pytest.mark.emulators
def test_instances_share_views_through_firestore(fs) -> None:  # type: ignore[no-untyped-def]
    builds = Builds()
    first, second = ViewCache(FirestoreSharedViews(fs)), ViewCache(FirestoreSharedViews(fs))
    now = datetime.now(UTC)
    built, state = ask(first, builds, now, refresh=300)
    assert state == "miss"
    view, state = ask(second, builds, now + timedelta(seconds=1), refresh=300)
    assert state == "shared"
    assert view == built
    assert builds.count == 1
    stored = list(fs.collection("dashboard_views").stream())
    assert {doc.id.endswith(".lease") for doc in stored} == {True, False}
    assert all(doc.to_dict()["expire_at"] > now for doc in stored)
