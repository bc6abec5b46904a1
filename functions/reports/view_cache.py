"""Built dashboards shared by every format and every instance for their refresh interval.

A dashboard's view (its panels' figures, not a rendering) is what costs: hundreds of Firestore
reads. It is built once per refresh slot (``floor(now / refresh_seconds)``) and stored in the
``dashboard_views`` collection; HTML, JSON, markdown and text render from that one view, in the
reader's time zone, and an instance that did not build it reads one document instead of every
panel's series. Instances that miss at the same moment do not all build: the first to create the
slot's lease builds, the others wait for its view (a bounded wait, then they build themselves, so
a builder that died costs a few seconds, never an answer).

In process, a lock per key makes concurrent requests of one instance share one build as well.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from functions.reports.views import DashboardView
from shared.logging import get_logger

log = get_logger("reports.view_cache")

VIEWS = "dashboard_views"
# A Firestore document holds 1 MiB; a view larger than this is built and served, not shared.
MAX_SHARED_BYTES = 900_000
LEASE_WAIT_SECONDS = 8.0
LEASE_POLL_SECONDS = 0.1


def view_key(name: str, window: str, region: str | None, slot: int) -> str:
    """The document id of one dashboard's view in one refresh slot."""
    raw = f"{name}|{window}|{region or ''}|{slot}"
    return f"{name}-{window}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def refresh_slot(now: datetime, refresh_seconds: int) -> int:
    return int(now.timestamp()) // refresh_seconds


class SharedViews(Protocol):
    """Where built views are shared between instances."""

    def get(self, key: str, now: datetime) -> DashboardView | None: ...
    def put(self, key: str, view: DashboardView, expires: datetime) -> None: ...
    def lease(self, key: str, now: datetime, expires: datetime) -> bool: ...


class MemorySharedViews:
    """One process's stand-in for the shared store (tests, and ``ION_REPORTS_CACHE_DASHBOARDS``
    with no Firestore)."""

    def __init__(self) -> None:
        self._views: dict[str, tuple[datetime, str]] = {}
        self._leases: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: datetime) -> DashboardView | None:
        with self._lock:
            hit = self._views.get(key)
        if hit is None or hit[0] <= now:
            return None
        return DashboardView.model_validate_json(hit[1])

    def put(self, key: str, view: DashboardView, expires: datetime) -> None:
        with self._lock:
            self._views = {k: v for k, v in self._views.items() if v[0] > view.generated_at}
            self._views[key] = (expires, view.model_dump_json())

    def lease(self, key: str, now: datetime, expires: datetime) -> bool:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held > now:
                return False
            self._leases[key] = expires
            return True


class FirestoreSharedViews:
    """Views in ``dashboard_views`` (``expire_at`` TTL), leases as ``<key>.lease`` documents
    created only if absent: Firestore decides which instance builds."""

    def __init__(self, client: Any = None) -> None:
        from shared.firestore import get_firestore

        self.client = client or get_firestore()

    def get(self, key: str, now: datetime) -> DashboardView | None:
        snap = self.client.collection(VIEWS).document(key).get()
        if not snap.exists:
            return None
        doc = snap.to_dict() or {}
        expires = doc.get("expire_at")
        if expires is None or expires <= now:
            return None
        try:
            return DashboardView.model_validate_json(doc["view"])
        except (KeyError, ValueError):
            log.warning("a shared dashboard view could not be read; building it", extra={"key": key})
            return None

    def put(self, key: str, view: DashboardView, expires: datetime) -> None:
        body = view.model_dump_json()
        if len(body.encode()) > MAX_SHARED_BYTES:
            log.warning(
                "dashboard view too large to share; each instance builds it",
                extra={"key": key, "bytes": len(body.encode())},
            )
            return
        self.client.collection(VIEWS).document(key).set({"view": body, "expire_at": expires})

    def lease(self, key: str, now: datetime, expires: datetime) -> bool:
        from google.api_core.exceptions import AlreadyExists

        try:
            self.client.collection(VIEWS).document(f"{key}.lease").create({"at": now, "expire_at": expires})
        except AlreadyExists:
            return False
        return True


class ViewCache:
    """One build per dashboard, window, region and refresh slot, across formats and instances."""

    def __init__(self, shared: SharedViews, *, wait_seconds: float = LEASE_WAIT_SECONDS) -> None:
        self.shared = shared
        self.wait_seconds = wait_seconds
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._local: dict[str, tuple[datetime, DashboardView]] = {}

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 1000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(key, threading.Lock())

    def view(
        self,
        *,
        name: str,
        window: str,
        region: str | None,
        refresh_seconds: int,
        now: datetime,
        build: Callable[[], DashboardView],
    ) -> tuple[DashboardView, str]:
        """The slot's view and where it came from: ``hit`` (this instance), ``shared`` (another
        instance built it), ``miss`` (built here)."""
        slot = refresh_slot(now, refresh_seconds)
        key = view_key(name, window, region, slot)
        expires = datetime.fromtimestamp((slot + 1) * refresh_seconds, tz=now.tzinfo)
        # This instance keeps a view for the refresh interval from when it was built, whatever
        # the slot: a reload within the interval is a hit even across a slot's end.
        local_key = f"{name}|{window}|{region or ''}"
        with self._lock_for(local_key):
            local = self._local.get(local_key)
            if local is not None and local[0] > now:
                return local[1], "hit"
            view, state = self._shared_or_built(key, now, expires, build)
            with self._guard:
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
                self._local[local_key] = (view.generated_at + timedelta(seconds=refresh_seconds), view)
            return view, state

    def _shared_or_built(
        self, key: str, now: datetime, expires: datetime, build: Callable[[], DashboardView]
    ) -> tuple[DashboardView, str]:
        try:
            found = self.shared.get(key, now)
            if found is not None:
                return found, "shared"
            if not self.shared.lease(key, now, expires + timedelta(seconds=self.wait_seconds)):
                waited = self._wait_for(key, now)
                if waited is not None:
                    return waited, "shared"
        except Exception:  # the shared store is an optimisation: its failure costs a build
            log.warning("shared dashboard views unavailable; building here", exc_info=True)
            return build(), "miss"
        view = build()
        try:
            self.shared.put(key, view, expires)
        except Exception:
            log.warning("could not share a built dashboard view", exc_info=True, extra={"key": key})
        return view, "miss"

    def _wait_for(self, key: str, now: datetime) -> DashboardView | None:
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            time.sleep(LEASE_POLL_SECONDS)
            found = self.shared.get(key, now)
            if found is not None:
                return found
        log.warning("another instance's dashboard build did not arrive; building here", extra={"key": key})
        return None
