"""What this instance knows of the series registry, so that a batch of known series costs no
registry read: each series' bucket, and the metric names each service was admitted for. Bounded:
an instance living for weeks sees ever new series (revisions, pods, customers)."""

from __future__ import annotations

from itertools import islice
from typing import Any

# sid -> (its bucket, monotonic time it was read from or written to the registry).
series: dict[str, tuple[int, float]] = {}
# (service, metric) -> monotonic time the pair was admitted by the per-service metric limit.
metrics: dict[tuple[str, str], float] = {}
KNOWN_MAX = 100_000


def remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``key`` last (a dict keeps insertion order), so ``forget_oldest`` drops it last."""
    cache.pop(key, None)
    cache[key] = value


def forget_oldest(cache: dict[Any, Any]) -> None:
    """Past ``KNOWN_MAX`` entries, forget the tenth stored longest ago: a forgotten entry is only
    looked up again. A plain dict, not an LRU: every series of every batch is looked up on the
    ingest path, and an LRU's lookup costs six times a dict's."""
    if len(cache) > KNOWN_MAX:
        for key in list(islice(cache, len(cache) - KNOWN_MAX + KNOWN_MAX // 10)):
            del cache[key]


def reset() -> None:
    series.clear()
    metrics.clear()
