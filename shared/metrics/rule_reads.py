"""Where a query's rollups come from in Firestore: a range of rollups (streamed, or read once per
dashboard build), and what the recording rules answer: a rule's folded hours, and the hours not
folded yet from the rule's provisional hours while they hold (checked against the tail's stamp
documents), else from their minutes (read by the ids the stamp documents name) merged by the rule
once per build (``shared/metrics/recording.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from shared.metrics.build_reads import RangeKey, current_build_reads
from shared.metrics.recording import (
    TAIL_STAMP,
    TAIL_THROUGH,
    TAIL_WRITTEN,
    FoldState,
    RecordingRule,
    reads_previous_tail,
    rule_hour_id,
)
from shared.metrics.rule_reduce import Minutes, reducer
from shared.metrics.stamps import (
    RollupsById,
    StampedMinute,
    minute_stamps,
    stamped_minutes,
    written_digest,
)
from shared.metrics.store import (
    SUMMARY_FIELDS,
    minutes_stamp,
    rollups,
    rule_hours,
    rule_tail,
)


def tail_documents(
    metric: str, rule: RecordingRule, low: datetime, high: datetime, wants_sketch: bool
) -> list[dict[str, Any]]:
    """The unfolded hours ``[low, high)`` for the queries ``rule`` answers, inside a build: an hour
    whose provisional rule hour (``metric_rule_tail``, written by the downsampler, merging the
    minutes ``[hour, through)``) still holds is read from it and its minutes after ``through``;
    any other hour from all its minutes. Whether one holds, and which minute rollups exist after
    it, comes from the tail's stamp documents (``stamps.MINUTE_STAMPS``: one query over a small
    collection), and those rollups are read by id: while the provisional hours hold, no query
    over the minute rollups (``_tail_pieces`` says when one is made). Minutes are merged by the
    rule once per build."""
    if reads_previous_tail():
        return _tail_by_aggregation(metric, rule, low, high, wants_sketch)
    shared = current_build_reads()
    assert shared is not None
    minutes = rollups(metric, "minute")
    recorded = _recorded(metric, rule, low, high)
    stamped: dict[datetime, list[StampedMinute]] = shared.once(
        ("minute_stamps", metric, low, high), lambda: _stamped(metric, low, high)
    )
    held: dict[datetime, datetime] = {}
    for hour, (through, _) in _candidates(recorded, low, high).items():
        merged = [m for m in stamped.get(hour, ()) if m.minute < through]
        if recorded[hour].get(TAIL_WRITTEN) == written_digest(merged):
            held[hour] = through
    out: list[dict[str, Any]] = [recorded[hour] for hour in sorted(held)]
    for start, end, by_id in _tail_pieces(held, set(recorded), low, high):
        # Reduced per hour (a range may span several): each counted in the bucket of its hour.
        minutes_key: RangeKey = (metric, "minute", start, end)
        source: Any = range_of(minutes, start, end)
        if by_id:
            named = [m.rollup for found in stamped.values() for m in found if start <= m.minute < end]
            source = RollupsById(minutes, sorted(named))
        reduce = reducer(_minutes_of(source, minutes_key), rule)
        out.extend(shared.reduced(minutes_key, rule.id, sketches=wants_sketch, reduce=reduce))
    return out


def _tail_pieces(
    held: dict[datetime, datetime], recorded: set[datetime], low: datetime, high: datetime
) -> list[tuple[datetime, datetime, bool]]:
    """The minutes no provisional hour holds, as few ranges as possible (one read each: a metric
    without data in its tail costs one empty read, not one per hour), each with whether its
    rollups are read by the ids the stamp documents name.

    By id: the minutes after a held hour's ``through``, and the hours after the last held one
    that have no provisional hour yet (the hour just begun). A held hour proves that the rollups
    it merged were all written with their stamp documents, and later writes are too. Every other
    hour by a range query, as before stamp documents: one whose provisional hour does not hold
    (a late point or writer shard since, or rollups written before stamp documents existed, which
    the stamp documents cannot name), or one before the first held hour."""
    last_held = max(held, default=None)
    pieces: list[tuple[datetime, datetime, bool]] = []
    hour = low
    while hour < high:
        after = hour + timedelta(hours=1)
        first = held.get(hour, hour)
        by_id = hour in held or (last_held is not None and hour > last_held and hour not in recorded)
        if first < after:
            if pieces and pieces[-1][1] == first and pieces[-1][2] == by_id:
                pieces[-1] = (pieces[-1][0], after, by_id)
            else:
                pieces.append((first, after, by_id))
        hour = after
    return pieces


def _recorded(
    metric: str, rule: RecordingRule, low: datetime, high: datetime
) -> dict[datetime, dict[str, Any]]:
    """The rule's provisional hours of ``[low, high)`` by hour (once per build)."""
    key: RangeKey = (metric, f"tail:{rule.id}", low, high)
    return {
        doc["t"]: doc
        for doc in documents(rule_range(rule_tail(metric), rule.id, low, high), key, True)
        if isinstance(doc.get("t"), datetime)
    }


def _stamped(metric: str, low: datetime, high: datetime) -> dict[datetime, list[StampedMinute]]:
    """The minute rollups of the hours ``[low, high)`` as their stamp documents name them."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    stamps = minute_stamps(metric)
    in_range = stamps.where(filter=FieldFilter("t", ">=", low)).where(filter=FieldFilter("t", "<", high))
    found: dict[datetime, list[StampedMinute]] = {}
    for snapshot in in_range.stream():
        named = stamped_minutes(snapshot.id, snapshot.to_dict() or {})
        if named:
            found.setdefault(named[0].minute.replace(minute=0), []).extend(named)
    return found


def _candidates(
    recorded: dict[datetime, dict[str, Any]], low: datetime, high: datetime
) -> dict[datetime, tuple[datetime, tuple[int, int]]]:
    """The provisional hours well formed enough to hold: hour -> (through, stamp)."""
    candidates: dict[datetime, tuple[datetime, tuple[int, int]]] = {}
    for hour, doc in recorded.items():
        through, stamp = doc.get(TAIL_THROUGH), doc.get(TAIL_STAMP)
        if (
            low <= hour < high
            and not doc.get("overflow")
            and isinstance(through, datetime)
            and hour < through <= hour + timedelta(hours=1)
            and isinstance(stamp, list)
            and len(stamp) == 2
        ):
            candidates[hour] = (through, (int(stamp[0]), int(stamp[1])))
    return candidates


def _tail_by_aggregation(
    metric: str, rule: RecordingRule, low: datetime, high: datetime, wants_sketch: bool
) -> list[dict[str, Any]]:
    """The tail as read before stamp documents (``recording.previous_tail()``, the bench's
    before-and-after): each provisional hour checked by an aggregation over its minute rollups'
    write stamps (``store.minutes_stamp``), the minutes no provisional hour holds read with range
    queries over the minute rollups."""
    shared = current_build_reads()
    assert shared is not None
    minutes = rollups(metric, "minute")
    recorded = _recorded(metric, rule, low, high)
    held = _holding(metric, minutes, _candidates(recorded, low, high), low)
    out: list[dict[str, Any]] = [recorded[hour] for hour in sorted(held)]
    for start, end, _ in _tail_pieces(held, set(), low, high):
        minutes_key: RangeKey = (metric, "minute", start, end)
        reduce = reducer(_minutes_of(range_of(minutes, start, end), minutes_key), rule)
        out.extend(shared.reduced(minutes_key, rule.id, sketches=wants_sketch, reduce=reduce))
    return out


def _holding(
    metric: str,
    minutes: Any,
    candidates: dict[datetime, tuple[datetime, tuple[int, int]]],
    low: datetime,
) -> dict[datetime, datetime]:
    """The hours whose provisional document still holds by the write stamps' aggregation, each
    with its ``through``.

    A range's stamp (count, sum of write stamps) never decreases: rollups are only added or
    written again (each write raises its stamp), never deleted while their hour is unfolded. So
    when the provisional hours from ``low`` on follow each other (every one but the last merged
    its whole hour), one aggregation over all of them equal to the sum of their stamps proves
    each one's unchanged; otherwise (or on a mismatch) each hour is checked on its own."""
    shared = current_build_reads()
    assert shared is not None

    def stamp_of(start: datetime, end: datetime) -> tuple[int, int]:
        return shared.once(("minutes_stamp", metric, start, end), lambda: minutes_stamp(minutes, start, end))

    chain: list[datetime] = []
    hour = low
    while hour in candidates:
        chain.append(hour)
        if candidates[hour][0] < hour + timedelta(hours=1):
            break
        hour += timedelta(hours=1)
    held: dict[datetime, datetime] = {}
    if len(chain) > 1:
        stored = (sum(candidates[h][1][0] for h in chain), sum(candidates[h][1][1] for h in chain))
        if stamp_of(low, candidates[chain[-1]][0]) == stored:
            held = {h: candidates[h][0] for h in chain}
    for hour, (through, stamp) in candidates.items():
        if hour not in held and stamp_of(hour, through) == stamp:
            held[hour] = through
    return held


def folded_sources(
    metric: str,
    rule: RecordingRule | None,
    state: FoldState,
    start: datetime,
    end: datetime,
    *,
    wants_sketch: bool,
) -> list[tuple[Any, bool, RangeKey]]:
    """The folded hours ``[start, end)``: from the recording rule answering the query for the
    hours it holds complete, from the hour rollups for the others (and for an hour a rule could
    not hold in one document)."""
    raw = rollups(metric, "hour")
    since = state.recorded_since.get(rule.id) if rule is not None else None
    if rule is None or since is None or since >= end:
        return [(range_of(raw, start, end), False, (metric, "hour", start, end))]
    sources: list[tuple[Any, bool, RangeKey]] = []
    first = max(start, since)
    if start < first:
        sources.append((range_of(raw, start, first), False, (metric, "hour", start, first)))
    key: RangeKey = (metric, f"rule:{rule.id}", first, end)
    recorded = rule_range(rule_hours(metric), rule.id, first, end)
    # Read here (once per build inside rollup_reads) to find any overflowed hour before folding;
    # with their sketches (a few series an hour): the build's percentile and summary queries of
    # the rule then share one read.
    docs = list(documents(recorded, key, True))
    sources.append(([doc for doc in docs if not doc.get("overflow")], False, key))
    for doc in docs:
        if doc.get("overflow"):
            hour = doc["t"]
            after = hour + timedelta(hours=1)
            sources.append((range_of(raw, hour, after), False, (metric, "hour", hour, after)))
    return sources


def _minutes_of(source: Any, key: RangeKey) -> Minutes:
    return lambda: documents(source, key, True)


def documents(source: Any, key: RangeKey, wants_sketch: bool) -> Iterable[dict[str, Any]]:
    """The range's rollups: streamed, or once per build inside ``build_reads.rollup_reads()``."""

    def load(sketches: bool) -> Iterable[dict[str, Any]]:
        stream = source if sketches else source.select(SUMMARY_FIELDS)
        return _read(stream)

    shared = current_build_reads()
    if shared is None:
        return load(wants_sketch)
    return shared.documents(key, sketches=wants_sketch, load=lambda sketches: list(load(sketches)))


def _read(source: Any) -> Iterator[dict[str, Any]]:
    """The fields of a query's or a by-id read's documents, without a snapshot per document."""
    if isinstance(source, RollupsById):
        return source.read()
    from shared.firestore_reads import stream_fields

    return (fields for _, fields in stream_fields(source))


def rule_range(collection: Any, rule_id: str, start: datetime, end: datetime) -> Any:
    """A rule's hours in ``[start, end)``: an id range (ids of one rule sort by time), which the
    automatic ``__name__`` index serves; the documents hold only that rule."""
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    name = FieldPath.document_id()
    low = collection.document(rule_hour_id(rule_id, start))
    high = collection.document(rule_hour_id(rule_id, end))
    return collection.where(filter=FieldFilter(name, ">=", low)).where(filter=FieldFilter(name, "<", high))


def range_of(collection: Any, start: datetime, end: datetime) -> Any:
    """Rollups whose bucket starts in ``[start, end)``: a range on ``t``, which Firestore's
    automatic single-field index serves."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    return collection.where(filter=FieldFilter("t", ">=", start)).where(filter=FieldFilter("t", "<", end))
