"""Rollups merged by a recording rule's labels in memory, once per build: the minutes of the hours
not folded yet, per hour (as the downsampler records a rule's hour), and a minute-resolution
window's minutes, per minute. Every query the rule answers then folds a few series a bucket
instead of every stored series (a 1-hour dashboard at production's cardinality folds 240 request
series a minute per query)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Literal

from shared.metrics.build_reads import RangeKey, current_build_reads
from shared.metrics.recording import RecordingRule, recorded_key
from shared.metrics.sketch import Sketch
from shared.metrics.store import SERIES_MAP, SKETCHES, UNSUMMED, Summary, bucket_start, entries

Bucket = Literal["hour", "minute"]
# Minute windows folded from every stored series, as before the per-minute merge: only inside
# ``unmerged_minutes()``, the bench's before-and-after.
_unmerged: ContextVar[bool] = ContextVar("ion_unmerged_minutes", default=False)


def merges_minutes() -> bool:
    return not _unmerged.get()


@contextmanager
def unmerged_minutes() -> Iterator[None]:
    """Fold this block's minute windows from every stored series (the bench only)."""
    token = _unmerged.set(True)
    try:
        yield
    finally:
        _unmerged.reset(token)


Minutes = Callable[[], Iterable[dict[str, Any]]]


def reducer(
    minutes: Minutes, rule: RecordingRule, bucket: Bucket = "hour"
) -> Callable[[bool], list[dict[str, Any]]]:
    """``minutes()`` (the range read once with its sketches: decoding the series maps is the
    cost, not the sketch bytes) reduced with or without merging the sketches."""

    def reduce(sketches: bool) -> list[dict[str, Any]]:
        return reduce_by_rule(minutes(), rule, sketches, bucket)

    return reduce


def minutes_by_rule(
    minutes: Minutes, key: RangeKey, rule: RecordingRule, wants_sketch: bool
) -> list[dict[str, Any]]:
    """A minute-resolution range inside a build, merged per minute by ``rule`` once for all the
    queries it answers (kept apart from the per-hour reductions of the same range)."""
    shared = current_build_reads()
    assert shared is not None
    reduce = reducer(minutes, rule, "minute")
    return shared.reduced(key, f"{rule.id}/minute", sketches=wants_sketch, reduce=reduce)


def reduce_by_rule(
    docs: Iterable[dict[str, Any]], rule: RecordingRule, sketches: bool, bucket: Bucket = "hour"
) -> list[dict[str, Any]]:
    """Minute rollups merged per ``bucket`` by ``rule``'s labels (and kind), one document per
    bucket whose ``sk`` holds decoded sketches."""
    shared = current_build_reads()
    merged_buckets: dict[datetime, dict[str, Any]] = {}
    for doc in docs:
        at = bucket_start(doc["t"], bucket)
        reduced = merged_buckets.get(at)
        if reduced is None:
            reduced = merged_buckets[at] = {"t": at, SERIES_MAP: {}, SKETCHES: {}}
        series, merged = reduced[SERIES_MAP], reduced[SKETCHES]
        for _, summary, sketch_bytes in entries(doc):
            labels: dict[str, str] = summary.get("labels") or {}
            kind = str(summary.get("kind"))
            kept = rule.kept(labels)
            series_key = recorded_key(kept, kind)
            stored = Summary.of(summary)
            into = series.get(series_key)
            if into is None:
                into = series[series_key] = {"labels": kept, "kind": kind, "count": 0.0, "sum": 0.0}
                into["min"] = into["max"] = None
            into["count"] += stored.count
            into["sum"] += stored.sum
            if stored.unsummed:
                into[UNSUMMED] = into.get(UNSUMMED, 0.0) + stored.unsummed
            if stored.min is not None and (into["min"] is None or stored.min < into["min"]):
                into["min"] = stored.min
            if stored.max is not None and (into["max"] is None or stored.max > into["max"]):
                into["max"] = stored.max
            if sketches and sketch_bytes:
                decode = Sketch.from_bytes
                sketch = shared.sketch(sketch_bytes, decode) if shared else decode(sketch_bytes)
                target = merged.get(series_key)
                if target is None:
                    target = merged[series_key] = Sketch()
                target.merge(sketch)
    return [merged_buckets[at] for at in sorted(merged_buckets)]
