"""Rendered dashboards kept for their refresh interval."""

from __future__ import annotations

import threading


class DashboardCache:
    """Rendered dashboards per (name, window, region, format), each kept for its dashboard's
    refresh interval: a page reloaded by its meta refresh, or by many people, reads once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], tuple[float, str]] = {}

    def get(self, key: tuple[str, ...], now: float) -> str | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] <= now:
                return None
            return hit[1]

    def put(self, key: tuple[str, ...], body: str, expires: float) -> None:
        with self._lock:
            if len(self._entries) > 500:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > expires - 3600}
            self._entries[key] = (expires, body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


dashboard_cache = DashboardCache()
