"""The downsampler (``POST /v1/downsample``, scheduled every 5 minutes): folds the minute rollups of
every closed hour into one hour rollup per bucket of series, as Prometheus/Thanos compaction does
with blocks, so that ingestion writes one document per bucket and minute instead of two.

When an hour may be folded
    Ingestion refuses points older than the lateness allowance (``ION_METRICS_MAX_AGE_SECONDS``),
    so once an hour closed more than that ago, plus ``ION_METRICS_FOLD_GRACE_SECONDS`` (a request
    accepted just in time commits up to a function timeout later), its minute rollups can no
    longer change. Hours before ``cutoff = floor_hour(now - lateness - grace)`` are foldable.

Exactly once, idempotent
    A fold recomputes a bucket's hour rollup from the hour's minute rollups of that bucket (all
    shards, every series in them) and *sets* it under a fixed id (``{bucket key}-{hour}-0``); it
    never adds to what is there. Folding twice writes the same document, so a crash, an
    overlapping run or a re-run cannot count anything twice.

Watermark
    ``metric_folds/{metric_id}.folded_until`` (W): hours before W are complete in
    ``metric_hours``; the query reads later hours from ``metric_minutes``. A pass folds
    ``[W, target)`` bucket by bucket (buckets found in key order among the minute rollups: a
    rollup id starts with its bucket key) and moves W to ``target`` only in the transaction that
    writes the last bucket, so readers never see a half-folded hour.

Bounded, resumable
    One run folds at most ``ION_METRICS_DOWNSAMPLE_MAX_SERIES`` series, in whole buckets; every
    transaction (at most ``ION_METRICS_TXN_WRITES`` writes and ``TXN_DOCUMENTS`` hour rollups)
    also stores the pass's ``cursor`` (last bucket folded whole) and ``target``, so the next run,
    or the one after a crash, resumes after the cursor (a bucket folded in part is folded again:
    it is a recompute). Each commit first checks that the pass it belongs to is still the current
    one, so two overlapping runs cannot move the watermark backwards.

Recording rules
    When a pass has folded every bucket, it recomputes from the pass's hour rollups, for every
    recording rule of the metric (``shared/metrics/recording.py``), one document per hour with
    the hour's series merged by the rule's labels, and sets them (never adds) before the
    transaction that moves W; that transaction records, per rule, the first hour its documents
    hold complete (``rules``: a new rule starts at the pass's W). Hours folded before a rule
    existed are backfilled from the hour rollups by later runs (``RULE_BACKFILL_HOURS`` hours
    per run and metric, back to ``RULE_BACKFILL``), lowering that first hour in a transaction
    that checks nothing moved meanwhile; until then readers read those hours raw. Runs that find
    a metric folded up to the cutoff also record provisional rule hours of the hours not folded
    yet, the hour in progress up to a few minutes ago included, each valid while the write stamp
    of the minute rollups it merged holds (``rule_hours.py``).

Retention
    Minutes live 72 h, so the downsampler must not stop for longer than ~70 h. On a metric's first
    pass W starts at the oldest hour whose minutes are all retained plus a margin
    (``FIRST_PASS_MARGIN``), so that a long first pass finishes before TTL deletes those minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.ingestion.aggregate import Cell
from functions.ingestion.rule_hours import backfill_rules, record_rule_hours, record_tail
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.write_units import TXN_DOCUMENTS
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.metrics.recording import RULES_FIELD, recorded_since, rules_of
from shared.metrics.store import (
    FOLDS,
    HOURS,
    METRICS,
    MINUTES,
    bucket_key_of,
    bucket_start,
    complete_minutes_since,
    entries,
    rollup_document,
    rollup_id,
    rollup_prefix,
)

log = get_logger("ingestion.downsample")

# On a metric's first pass, hours are folded from this long after the oldest fully retained one,
# so that a long first pass (bounded runs) finishes before TTL starts deleting that hour's minutes.
FIRST_PASS_MARGIN = timedelta(hours=6)
FOLD_SHARD = 0
# A bucket key is fixed-length hex and a rollup id is "{key}-...": "{key}~" sorts after every
# rollup of the bucket and before the next bucket's first one.
_PAST_BUCKET = "~"


class DownsampleResult(BaseModel):
    cutoff: datetime  # hours starting before this were foldable in this run
    metrics: int  # metrics looked at
    metrics_advanced: int  # metrics whose watermark moved to the cutoff in this run
    series: int  # series folded (in whole buckets)
    hours_written: int  # hour rollups written (one per bucket and hour)
    rule_hours_written: int = 0  # recording rules' hours written (one per rule and hour with data)
    tail_hours_written: int = 0  # provisional rule hours of hours not folded yet
    documents_written: int  # every write: hour rollups, rule hours and fold states
    complete: bool  # every metric folded up to the cutoff (False: the next run resumes)


class _Superseded(Exception):
    """Another run moved this metric's pass on; this run leaves the metric to it."""


@dataclass
class _Pass:
    metric: str
    metric_doc: str
    folded_until: datetime
    target: datetime
    cursor: str
    existed: bool
    writes: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # (ref, hour rollup)
    series: int = 0
    hours: int = 0
    rule_hours: int = 0
    documents: int = 0


def cutoff_at(now: datetime) -> datetime:
    """Hours starting before this can no longer receive points (see the module docstring)."""
    delay = timedelta(seconds=get_ingestion_settings().fold_delay_seconds)
    return bucket_start(now - delay, "hour")


def downsample() -> DownsampleResult:
    """One bounded run over every metric (see the module docstring)."""
    settings = get_ingestion_settings()
    client = get_firestore()
    started = time.perf_counter()
    now = utcnow()
    cutoff = cutoff_at(now)
    budget = settings.downsample_max_series
    metrics = advanced = series = hours = rule_hours = tail_hours = documents = 0
    complete = True
    for snapshot in client.collection(METRICS).select(["name"]).stream():
        name = (snapshot.to_dict() or {}).get("name")
        if not isinstance(name, str):
            continue
        metrics += 1
        state = _start(name, snapshot.id, now, cutoff)
        if state is None:
            backfilled, written = backfill_rules(name, snapshot.id, now)
            rule_hours += backfilled
            documents += written
            provisional = record_tail(name, snapshot.id, now)
            tail_hours += provisional
            documents += provisional
            continue
        if budget <= 0:
            complete = False
            continue
        try:
            done = _fold_metric(state, budget, settings.max_writes_per_transaction)
        except _Superseded:
            log.info("metric is being folded by another run", extra={"metric": name})
            complete = False
            done = False
        budget -= state.series
        series += state.series
        hours += state.hours
        rule_hours += state.rule_hours
        documents += state.documents
        if done:
            advanced += 1
        else:
            complete = False
    result = DownsampleResult(
        cutoff=cutoff,
        metrics=metrics,
        metrics_advanced=advanced,
        series=series,
        hours_written=hours,
        rule_hours_written=rule_hours,
        tail_hours_written=tail_hours,
        documents_written=documents,
        complete=complete,
    )
    log.info(
        "downsample run",
        extra={**result.model_dump(mode="json"), "seconds": round(time.perf_counter() - started, 3)},
    )
    return result


def _start(metric: str, metric_doc: str, now: datetime, cutoff: datetime) -> _Pass | None:
    """The metric's pass to work on, or None when it is folded up to the cutoff."""
    snapshot = get_firestore().collection(FOLDS).document(metric_doc).get()
    doc = snapshot.to_dict() or {} if snapshot.exists else {}
    folded = doc.get("folded_until")
    if not isinstance(folded, datetime):
        folded = min(cutoff, complete_minutes_since(now) + FIRST_PASS_MARGIN)
    target = doc.get("target")
    if isinstance(target, datetime):  # a pass a previous run did not finish
        return _Pass(metric, metric_doc, folded, target, str(doc.get("cursor") or ""), snapshot.exists)
    if folded >= cutoff and snapshot.exists:
        return None
    return _Pass(metric, metric_doc, folded, max(folded, cutoff), "", snapshot.exists)


def _fold_metric(state: _Pass, budget: int, max_writes: int) -> bool:
    """Fold buckets after the cursor until the budget is spent (False) or the pass is done (True)."""
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    client = get_firestore()
    parent = client.collection(METRICS).document(state.metric_doc)
    minutes, hours = parent.collection(MINUTES), parent.collection(HOURS)
    name = FieldPath.document_id()
    per_commit = min(max_writes - 1, TXN_DOCUMENTS)
    while True:
        if state.target <= state.folded_until:
            found = []  # nothing to fold (first pass of an idle metric): just record the watermark
        else:
            query = minutes.order_by(name).limit(1).select(["t"])
            if state.cursor:
                after = minutes.document(state.cursor + _PAST_BUCKET)
                query = query.where(filter=FieldFilter(name, ">", after))
            found = list(query.stream())
        if not found:
            _finish(state, per_commit)
            return True
        if state.series >= budget:
            _commit(state, finished=False)
            return False
        key = bucket_key_of(found[0].id)
        writes, series = _fold_bucket(minutes, hours, key, state.folded_until, state.target)
        for write in writes:
            # A commit before the bucket is done keeps the cursor on the previous bucket, so a
            # crash has the whole bucket folded again (a recompute, the same documents).
            if len(state.writes) >= per_commit:
                _commit(state, finished=False)
            state.writes.append(write)
        state.hours += len(writes)
        state.series += series
        state.cursor = key


def _fold_bucket(
    minutes: Any, hours: Any, key: str, start: datetime, end: datetime
) -> tuple[list[tuple[Any, dict[str, Any]]], int]:
    """The hour rollups of bucket ``key`` over ``[start, end)`` recomputed from its minute rollups
    (all shards), and how many series they hold."""
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    name = FieldPath.document_id()
    # A bucket's rollups over [start, end) by id: no composite index needed (see store.rollup_id).
    low = minutes.document(rollup_prefix(key, start))
    high = minutes.document(rollup_prefix(key, end))
    query = minutes.where(filter=FieldFilter(name, ">=", low)).where(filter=FieldFilter(name, "<", high))
    cells: dict[datetime, dict[str, Cell]] = {}
    about: dict[datetime, dict[str, Any]] = {}  # hour -> metric and bucket
    meta: dict[str, dict[str, Any]] = {}  # sid -> labels and kind
    for snapshot in query.stream():
        doc = snapshot.to_dict() or {}
        hour = bucket_start(doc["t"], "hour")
        by_series = cells.setdefault(hour, {})
        about[hour] = {"metric": doc.get("metric"), "bucket": doc.get("bucket")}
        for sid, summary, sketch in entries(doc):
            cell = by_series.get(sid)
            if cell is None:
                cell = by_series[sid] = Cell()
            cell.merge(Cell.from_entry(summary, sketch))
            meta[sid] = {"labels": summary.get("labels") or {}, "kind": summary.get("kind")}
    writes: list[tuple[Any, dict[str, Any]]] = []
    for hour in sorted(cells):
        summaries: dict[str, Any] = {}
        sketches: dict[str, Any] = {}
        for sid, cell in cells[hour].items():
            summaries[sid], sketches[sid] = cell.to_entry(meta[sid]["labels"], meta[sid]["kind"])
        document = rollup_document(
            about[hour]["metric"], about[hour]["bucket"], hour, FOLD_SHARD, "hour", summaries, sketches
        )
        writes.append((hours.document(rollup_id(key, hour, FOLD_SHARD)), document))
    return writes, len(meta)


def _finish(state: _Pass, per_commit: int) -> None:
    """Record the pass's hours for every rule of the metric, then move the watermark."""
    rules = rules_of(state.metric)
    if rules and state.target > state.folded_until:
        if state.writes:  # the last hour rollups stored first: the rules are read from them
            _commit(state, finished=False)
        for write in record_rule_hours(state.metric_doc, rules, state.folded_until, state.target):
            if len(state.writes) >= per_commit:
                _commit(state, finished=False)
            state.writes.append(write)
            state.rule_hours += 1
    _commit(state, finished=True)


def _commit(state: _Pass, *, finished: bool) -> None:
    """Write the pending hour rollups with the pass's progress, if the pass is still current."""

    client = get_firestore()
    ref = client.collection(FOLDS).document(state.metric_doc)
    if finished:
        progress: dict[str, Any] = {"folded_until": state.target, "target": None, "cursor": None}
    else:
        progress = {"folded_until": state.folded_until, "target": state.target, "cursor": state.cursor}

    def commit(transaction: Any) -> None:
        snapshot = ref.get(transaction=transaction)
        doc = snapshot.to_dict() or {} if snapshot.exists else {}
        if snapshot.exists != state.existed or (
            snapshot.exists
            and (
                doc.get("folded_until") != state.folded_until or doc.get("target") not in (None, state.target)
            )
        ):
            raise _Superseded(state.metric)
        for target, body in state.writes:
            transaction.set(target, body)
        since = recorded_since(doc)
        if finished:
            # Declared rules only; a rule new to this metric is complete from this pass's start.
            since = {rule.id: since.get(rule.id, state.folded_until) for rule in rules_of(state.metric)}
        transaction.set(ref, {"metric": state.metric, **progress, RULES_FIELD: since, "updated": utcnow()})

    run_transaction(commit)
    state.documents += len(state.writes) + 1
    state.writes = []
    state.existed = True
