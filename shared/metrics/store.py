"""The metric store's Firestore layout, shared by the writer (ingestion) and the readers (query).

::

    metrics/{metric_id}                      name, kind, unit, description, updated,
                                             bucket_open, bucket_fill (series bucket assignment)
    metrics/{metric_id}/metric_series/{sid}  metric, labels, kind, bucket, last_seen, expire_at
    metrics/{metric_id}/metric_minutes/{id}  one minute of one bucket of series, one writer shard
    metrics/{metric_id}/metric_hours/{id}    one hour of one bucket, folded from its minutes
    metrics/{metric_id}/metric_rule_hours/{rule}-{hour}  one hour of one recording rule: the
                                             hour's series merged by the rule's labels
                                             (``recording.py``), same fields as an hour rollup
    metrics/{metric_id}/metric_rule_tail/{rule}-{hour}   the same for an hour not folded yet,
                                             merging its minutes up to ``through``, valid while
                                             their write stamp (``stamp``) holds, kept a day
    metrics/{metric_id}/metric_minute_stamps/{id}  the write stamps of one bucket's minute rollups
                                             of one hour and writer shard: ``m`` maps the
                                             minute (0-59) to its rollup's ``ws``; written in
                                             the rollups' transaction (see below)
    metric_folds/{metric_id}                 the downsampler's watermark and cursor for the metric,
                                             and per recording rule its first complete hour
    metric_stream_groups/{group}             last cumulative value of each OTLP stream of one
                                             sender in one bucket, applied, expire_at
    metric_streams/{stream}                  the same per stream, as kept before groups (read
                                             only), expire_at

Buckets: every series of a metric is assigned, once, when it is registered, to a numbered bucket
of at most ``ION_METRICS_BUCKET_SERIES`` series (filled in registration order). A rollup document
holds one bucket for one minute (or hour): ``series`` maps each series id present to its summary
(``labels``, ``kind``, ``count``, ``sum``, ``min``, ``max``, ``last``, ``last_t``, ``unsummed``
if histogram points came without their optional sum) and ``sk`` maps it to its compressed
DDSketch (``sketch.py``), kept apart so that queries without percentiles read no sketch bytes.
Besides: ``metric``, ``bucket``, ``t`` (bucket start), ``shard`` and ``expire_at`` (TTL: minutes
72 h, hours 90 days after ``t``). Minute rollups and stream states
also hold ``applied``: the batches applied to them (exactly-once, see the ingestion writer), and
``ws``, their write stamp: the minute (epoch minutes) times ``STAMP_SPAN`` plus the number of
writes the document has had. So a request writes one document per bucket and minute, however many
series of the bucket it touches.

Write stamps make "have these minutes changed?" one aggregation query instead of a read per
rollup: over the rollups of minutes ``[a, b)`` (a range on ``ws``, served by its automatic
single-field index), ``count()`` and ``sum(ws)`` are unchanged only if no rollup of the range was
written or added since, because every write raises its document's stamp and a new document adds
one (minute rollups are deleted only by TTL, 72 h after their minute; ``minutes_stamp``).

Stamp documents (``metric_minute_stamps``, id ``rollup_id(bucket key, hour, shard)``) repeat
those stamps per bucket, hour and writer shard, set (merged, not read) in the transaction that
writes the rollups: a rollup exists with stamp ``ws`` exactly when its hour's stamp document maps
its minute to ``ws`` (for rollups written since stamp documents exist). A reader learns from one
query over this small collection which rollups of an hour exist and how often each was written,
and reads them by id: no query over the minute rollups (``stamps.py``). Kept as long as the
minutes (TTL ``expire_at``).

Hours are not written by ingestion: the downsampler folds the minute rollups of each closed hour
into one hour rollup per bucket, and advances the metric's ``folded_until`` once every bucket is
folded. Readers take hours before ``folded_until`` from ``metric_hours`` and later hours from
``metric_minutes``, so an hour is never counted twice nor missed.

Ids: ``metric_id``, ``sid`` and the bucket key are hashes, and a rollup id starts with its bucket
key, so ids are never monotonic. A rollup is sharded by writer (``shard`` = hash of the batch's
senders, or of its id, mod ``ION_METRICS_WRITE_SHARDS``) so that concurrent writers of one bucket
spread over several documents; readers merge the shards. The only range query is on ``t`` inside one metric's
subcollection, which Firestore's automatic single-field index serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from shared.metrics.recording import FoldState

METRICS = "metrics"
SERIES = "metric_series"
MINUTES = "metric_minutes"
HOURS = "metric_hours"
STREAMS = "metric_streams"  # one state per stream: read only for streams kept before groups
STREAM_GROUPS = "metric_stream_groups"
FOLDS = "metric_folds"
# Field of minute rollups and stream states listing the batches applied to them.
APPLIED = "applied"
# Field of minute rollups: their write stamp (see the module's docstring).
WRITE_STAMP = "ws"
# Writes one minute rollup may have before its stamp would reach the next minute's: a document is
# written at most while its minute is within the lateness allowance (at most 24 h), and under
# Firestore's sustained 1 write/s per document that is at most 86,400 writes.
STAMP_SPAN = 1 << 24
UNSUMMED = "unsummed"  # field of a summary: observations of unknown sum (``Summary.unsummed``)
# Fields of a rollup: series id -> summary, and series id -> compressed sketch.
SERIES_MAP = "series"
SKETCHES = "sk"

Resolution = Literal["minute", "hour"]
RESOLUTION_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600}
SUBCOLLECTION: dict[str, str] = {"minute": MINUTES, "hour": HOURS}
RETENTION: dict[str, timedelta] = {"minute": timedelta(hours=72), "hour": timedelta(days=90)}
SERIES_RETENTION = timedelta(days=90)

Kind = Literal["gauge", "sum", "histogram"]
# Fields of a rollup that every aggregation except percentiles needs (the sketches are skipped).
SUMMARY_FIELDS = ["t", SERIES_MAP]


def _digest(text: str, size: int = 20) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size // 2).hexdigest()


def metric_id(metric: str) -> str:
    """Firestore id of a metric: metric names hold '/' and '.', and readable ids are not needed."""
    return _digest(metric, 20)


def series_key(labels: Mapping[str, str]) -> str:
    """Canonical text of a label set (sorted), used for series identity."""
    return "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))


def series_id(metric: str, labels: Mapping[str, str]) -> str:
    return _digest(metric + "\x1d" + series_key(labels), 24)


def bucket_start(at: datetime, resolution: str) -> datetime:
    seconds = RESOLUTION_SECONDS[resolution]
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def hour_ceil(at: datetime) -> datetime:
    start = bucket_start(at, "hour")
    return start if start == at else start + timedelta(hours=1)


def bucket_key(metric: str, bucket: int) -> str:
    """Id prefix of a bucket's rollups: a hash, so a metric's buckets spread over the key space."""
    return _digest(f"{metric}\x1d{bucket}", 24)


def rollup_id(key: str, start: datetime, shard: int) -> str:
    # Epoch seconds have 10 digits until 2286, so ids of one bucket sort by time: a bucket's
    # rollups over [a, b) are the ids in [rollup_prefix(key, a), rollup_prefix(key, b)).
    return f"{rollup_prefix(key, start)}-{shard}"


def rollup_prefix(key: str, start: datetime) -> str:
    return f"{key}-{int(start.timestamp())}"


def bucket_key_of(rollup: str) -> str:
    return rollup.split("-", 1)[0]


def entries(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    """``(sid, summary, sketch bytes or None)`` of every series in a rollup document."""
    sketches: dict[str, bytes] = doc.get(SKETCHES) or {}
    for sid, summary in (doc.get(SERIES_MAP) or {}).items():
        yield sid, summary, sketches.get(sid)


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers of one series in a rollup (its entry in ``series``, beside labels and kind)."""

    count: float = 0.0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    last: float = 0.0
    last_t: int = -1
    # Observations of histogram points sent without their optional sum: their sum is unknown.
    unsummed: float = 0.0

    def fields(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in ("count", "sum", "min", "max", "last", "last_t")}
        if self.unsummed:
            fields[UNSUMMED] = self.unsummed
        return fields

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Summary:
        return cls(
            count=float(entry.get("count") or 0.0),
            sum=float(entry.get("sum") or 0.0),
            min=None if entry.get("min") is None else float(entry["min"]),
            max=None if entry.get("max") is None else float(entry["max"]),
            last=float(entry.get("last") or 0.0),
            last_t=int(entry.get("last_t", -1)),
            unsummed=float(entry.get(UNSUMMED) or 0.0),
        )


def series_entry(labels: Mapping[str, str], kind: str, summary: Summary) -> dict[str, Any]:
    """One series' entry in a rollup's ``series`` map."""
    return {"labels": dict(labels), "kind": kind, **summary.fields()}


def rollup_document(  # noqa: PLR0917 - the fields of a rollup document
    metric: str | None,
    bucket: int | None,
    start: datetime,
    shard: int,
    resolution: Resolution,
    summaries: dict[str, Any],
    sketches: dict[str, Any],
    applied: list[str] | None = None,
) -> dict[str, Any]:
    """A minute or hour rollup as stored, kept ``RETENTION[resolution]`` after ``start``;
    ``applied`` (minute rollups only) lists the batches applied to it."""
    doc: dict[str, Any] = {
        "metric": metric,
        "bucket": bucket,
        "t": start,
        "shard": shard,
        "expire_at": start + RETENTION[resolution],
    }
    if applied is not None:
        doc[APPLIED] = applied
    doc[SERIES_MAP] = summaries
    doc[SKETCHES] = sketches
    return doc


def write_stamp(start: datetime, previous: Any) -> int:
    """The stamp of a minute rollup of ``start`` written once more (``previous``: its stamp, or
    None for a new document)."""
    writes = previous - stamp_floor(start) if isinstance(previous, int) else 0
    if not 0 <= writes < STAMP_SPAN - 1:
        raise ValueError(f"write stamp {previous} is not one of the minute {start.isoformat()}")
    return stamp_floor(start) + writes + 1


def stamp_floor(start: datetime) -> int:
    """Every stamp of the rollups of minutes from ``start`` on is above this."""
    return int(start.timestamp()) // 60 * STAMP_SPAN


# ``minutes_stamp``'s sum when it is not exact: no recorded stamp has it, so nothing holds on it.
UNKNOWN_STAMP_SUM = -1


def minutes_stamp(minutes: Any, start: datetime, end: datetime) -> tuple[int, int]:
    """``(count, sum of write stamps)`` of the minute rollups of ``[start, end)`` in the collection
    ``minutes``: one aggregation query, whatever the rollups' number. Changes whenever one of them
    is written or one is added (see the module's docstring). Firestore answers a sum past int64
    (some 19,000 rollups of today's minutes) as a float, which cannot tell one more write: the sum
    is then ``UNKNOWN_STAMP_SUM``, never recorded and never equal to a recorded one."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    in_range = minutes.where(filter=FieldFilter(WRITE_STAMP, ">=", stamp_floor(start))).where(
        filter=FieldFilter(WRITE_STAMP, "<", stamp_floor(end))
    )
    found: dict[str, Any] = {}
    for result in in_range.count(alias="count").sum(WRITE_STAMP, alias="sum").get():
        for aggregation in result:
            found[aggregation.alias] = aggregation.value
    total = found.get("sum") or 0
    return int(found.get("count") or 0), total if isinstance(total, int) else UNKNOWN_STAMP_SUM


def complete_minutes_since(now: datetime) -> datetime:
    """The first hour whose minute rollups are all still retained (not yet due for TTL)."""
    return hour_ceil(now - RETENTION["minute"])


def folded_until(metric: str, now: datetime) -> datetime:
    """Hours before this are in ``metric_hours``; later ones only in ``metric_minutes``.

    Before the downsampler's first pass over a metric, the hours whose minutes are all retained
    are read from minutes, and older hours from ``metric_hours`` (where a metric has none yet)."""
    return fold_state(metric, now).folded_until


def fold_state(metric: str, now: datetime) -> FoldState:
    """``folded_until`` (see above) and, per recording rule, the first hour it holds complete
    (``shared/metrics/recording.py``): one document read."""
    from shared.firestore import get_firestore
    from shared.metrics.recording import RULES_FIELD, FoldState, recorded_since

    snapshot = (
        get_firestore()
        .collection(FOLDS)
        .document(metric_id(metric))
        .get(field_paths=["folded_until", RULES_FIELD])
    )
    if snapshot.exists:
        doc = snapshot.to_dict() or {}
        value = doc.get("folded_until")
        if isinstance(value, datetime):
            return FoldState(value, recorded_since(doc))
    return FoldState(complete_minutes_since(now), {})


def metric_ref(metric: str):  # type: ignore[no-untyped-def]
    from shared.firestore import get_firestore

    return get_firestore().collection(METRICS).document(metric_id(metric))


def rollups(metric: str, resolution: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SUBCOLLECTION[resolution])


def rule_hours(metric: str):  # type: ignore[no-untyped-def]
    """The metric's recorded rule hours (``shared/metrics/recording.py``)."""
    from shared.metrics.recording import RULE_HOURS

    return metric_ref(metric).collection(RULE_HOURS)


def rule_tail(metric: str):  # type: ignore[no-untyped-def]
    """The metric's provisional rule hours of the hours not folded yet."""
    from shared.metrics.recording import RULE_TAIL

    return metric_ref(metric).collection(RULE_TAIL)


def series_collection(metric: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SERIES)


# --- stored size ------------------------------------------------------------------------------

# Firestore's own limit on one document (1 MiB).
FIRESTORE_MAX_DOCUMENT_BYTES = 1_048_576


def stored_size(value: Any) -> int:
    """Stored size of a field value by Firestore's size rules: strings and map keys are their
    UTF-8 bytes + 1, bytes their length, numbers and timestamps 8, null and booleans 1, maps and
    arrays the sum of their parts."""
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, dict):
        return sum(len(k.encode()) + 1 + stored_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(stored_size(v) for v in value)
    if isinstance(value, bytes):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    return 8


def document_size(path: str, fields: dict[str, Any]) -> int:
    """Stored size of a document: its name (the path's UTF-8 bytes + 16), its fields, and 32."""
    return len(path.encode()) + 16 + stored_size(fields) + 32
