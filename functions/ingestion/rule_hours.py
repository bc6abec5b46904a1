"""Recording rules' hours (``shared/metrics/recording.py``), written by the downsampler: each rule's
hours recomputed from the hour rollups when a pass folds them, hours folded before a rule existed
backfilled, and provisional hours of the hours not folded yet (the hour in progress up to a few
minutes ago), each valid only while the write stamp of the minute rollups it merged holds. Every
write sets a whole document (a recompute, never an addition), so a re-run or an overlapping run
writes the same documents."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from functions.ingestion.aggregate import Cell
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.write_units import TXN_DOCUMENTS
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.metrics.recording import (
    RULE_HOURS,
    RULE_TAIL,
    RULES_FIELD,
    TAIL_STAMP,
    TAIL_THROUGH,
    TAIL_WRITTEN,
    RecordingRule,
    recorded_key,
    recorded_since,
    rule_hour_id,
    rules_of,
)
from shared.metrics.stamps import (
    StampedMinute,
    written_digest,
)
from shared.metrics.store import (
    FOLDS,
    HOURS,
    METRICS,
    MINUTES,
    RETENTION,
    UNKNOWN_STAMP_SUM,
    WRITE_STAMP,
    bucket_key_of,
    bucket_start,
    document_size,
    entries,
    minutes_stamp,
)

log = get_logger("ingestion.rule_hours")

# Recording rules' hours folded before the rule existed are backfilled this far back (the weekly
# report's week before reaches 14 days back), this many hours per run and metric.
RULE_BACKFILL = timedelta(days=15)
RULE_BACKFILL_HOURS = 24
# Provisional rule hours are read only until their hour is folded (a few hours).
TAIL_RETENTION = timedelta(days=1)
# The hour in progress is recorded up to this long ago: most points of a minute arrive within
# it (exporters send every minute), so a provisional hour is rarely undone by a point arriving
# for a minute it merged; a build reads the minutes after it (up to this plus a downsampler
# interval) from the rollups.
TAIL_SETTLE = timedelta(minutes=3)


def record_rule_hours(
    metric_doc: str, rules: list[RecordingRule], start: datetime, end: datetime
) -> list[tuple[Any, dict[str, Any]]]:
    """Every rule's hours over ``[start, end)`` recomputed from the hour rollups (all buckets)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    parent = get_firestore().collection(METRICS).document(metric_doc)
    hours = (
        parent.collection(HOURS)
        .where(filter=FieldFilter("t", ">=", start))
        .where(filter=FieldFilter("t", "<", end))
        .order_by("t")
    )
    target = parent.collection(RULE_HOURS)
    writes: list[tuple[Any, dict[str, Any]]] = []
    for hour, (metric, merged) in _merged_by_rule((s.to_dict() or {} for s in hours.stream()), rules).items():
        for rule in rules:
            ref = target.document(rule_hour_id(rule.id, hour))
            writes.append((ref, _rule_document(ref.path, metric, rule, hour, merged.get(rule.id, {}))))
    return writes


Merged = dict[str, dict[str, tuple[dict[str, str], str, Cell]]]  # rule id -> key -> (labels, kind, cell)


def _merged_by_rule(docs: Any, rules: list[RecordingRule]) -> dict[datetime, tuple[str | None, Merged]]:
    """Rollups (hours or minutes) merged per hour and rule by the rule's labels and kind."""
    out: dict[datetime, tuple[str | None, Merged]] = {}
    for doc in docs:
        hour = bucket_start(doc["t"], "hour")
        if hour not in out:
            out[hour] = (doc.get("metric"), {})
        merged = out[hour][1]
        for _, summary, sketch in entries(doc):
            labels: dict[str, str] = summary.get("labels") or {}
            kind = str(summary.get("kind"))
            cell = Cell.from_entry(summary, sketch)
            for rule in rules:
                kept = rule.kept(labels)
                series = merged.setdefault(rule.id, {})
                key = recorded_key(kept, kind)
                found = series.get(key)
                if found is None:
                    found = series[key] = (kept, kind, Cell())
                found[2].merge(cell)
    return out


def record_tail(metric: str, metric_doc: str, now: datetime) -> int:
    """Provisional rule hours of the hours not folded yet (their points may still come, up to the
    lateness allowance), the hour in progress up to ``TAIL_SETTLE`` ago included: each merges the
    minutes ``[hour, through)`` and carries their write stamp (``store.minutes_stamp``); a reader
    uses one only while the stamp still holds, and reads the minutes after ``through`` itself.
    Recomputed when the stamp changed (or ``through`` moved); returns the documents written."""
    rules = rules_of(metric)
    if not rules:
        return 0
    client = get_firestore()
    snapshot = client.collection(FOLDS).document(metric_doc).get(field_paths=["folded_until"])
    folded = (snapshot.to_dict() or {}).get("folded_until") if snapshot.exists else None
    if not isinstance(folded, datetime):
        return 0
    parent = client.collection(METRICS).document(metric_doc)
    minutes, tail = parent.collection(MINUTES), parent.collection(RULE_TAIL)
    written = 0
    settled = bucket_start(now - TAIL_SETTLE, "minute")
    hour = folded
    while hour < settled:
        after = hour + timedelta(hours=1)
        through = min(after, settled)
        # The stamp first, the minutes after: a write in between leaves a stamp readers find
        # changed (they read the minutes), never one that vouches for minutes not merged.
        stamp = minutes_stamp(minutes, hour, through)
        refs = [tail.document(rule_hour_id(rule.id, hour)) for rule in rules]
        if stamp[0] and stamp[1] != UNKNOWN_STAMP_SUM:  # an inexact stamp vouches for nothing
            current = {}
            for snapshot in client.get_all(refs, field_paths=[TAIL_THROUGH, TAIL_STAMP]):
                fields = snapshot.to_dict() or {} if snapshot.exists else {}
                current[snapshot.id] = (fields.get(TAIL_THROUGH), fields.get(TAIL_STAMP))
            if any(current.get(ref.id) != (through, list(stamp)) for ref in refs):
                written += _write_tail_hour(minutes, refs, rules, hour, through, stamp)
        hour = after
    return written


def _write_tail_hour(  # noqa: PLR0917 - the hour's place and what vouches for it
    minutes: Any,
    refs: list[Any],
    rules: list[RecordingRule],
    hour: datetime,
    through: datetime,
    stamp: tuple[int, int],
) -> int:
    from google.cloud.firestore_v1.base_query import FieldFilter

    in_range = minutes.where(filter=FieldFilter("t", ">=", hour)).where(filter=FieldFilter("t", "<", through))
    snapshots = list(in_range.stream())
    docs = [s.to_dict() or {} for s in snapshots]
    if len(docs) != stamp[0] or any(not isinstance(doc.get(WRITE_STAMP), int) for doc in docs):
        # A rollup added since the stamp (the next run records it), or one written before write
        # stamps existed (the hour is read from its minutes until folded).
        log.info(
            "provisional rule hour not recorded: its minutes changed or lack write stamps",
            extra={"hour": hour.isoformat(), "stamped": stamp[0], "read": len(snapshots)},
        )
        return 0
    # Also the digest of the very rollups merged and their stamps: a build finds the same digest
    # in the hour's stamp documents exactly when no rollup of [hour, through) was written or
    # added since, and every one was written with its stamp document (``stamps.written_digest``).
    written = written_digest(
        StampedMinute(bucket_key_of(s.id), int(doc.get("shard") or 0), doc["t"], doc[WRITE_STAMP])
        for s, doc in zip(snapshots, docs, strict=True)
    )
    merged = _merged_by_rule(docs, rules)
    metric, by_rule = merged.get(hour, (None, {}))
    batch = get_firestore().batch()
    for ref, rule in zip(refs, rules, strict=True):
        body = _rule_document(ref.path, metric, rule, hour, by_rule.get(rule.id, {}))
        body.update({TAIL_THROUGH: through, TAIL_STAMP: list(stamp), TAIL_WRITTEN: written})
        body["expire_at"] = hour + TAIL_RETENTION
        batch.set(ref, body)
    batch.commit()
    return len(refs)


def _rule_document(
    path: str,
    metric: str | None,
    rule: RecordingRule,
    hour: datetime,
    merged: dict[str, tuple[dict[str, str], str, Cell]],
) -> dict[str, Any]:
    """A rule's hour as stored: an hour rollup's fields, one series per kept label set. A rule
    whose hour would not fit one document is stored as ``overflow`` (readers read that hour raw)."""
    summaries: dict[str, Any] = {}
    sketches: dict[str, Any] = {}
    for key, (labels, kind, cell) in merged.items():
        summaries[key], sketches[key] = cell.to_entry(labels, kind)
    doc: dict[str, Any] = {
        "metric": metric,
        "rule": rule.id,
        "by": list(rule.by),
        "t": hour,
        "expire_at": hour + RETENTION["hour"],
        "series": summaries,
        "sk": sketches,
    }
    if document_size(path, doc) > get_ingestion_settings().max_document_bytes:
        log.error(
            "recording rule hour too large for one document: read raw",
            extra={"metric": metric, "rule": list(rule.by), "hour": hour.isoformat(), "series": len(merged)},
        )
        doc.update(series={}, sk={}, overflow=True)
    return doc


def backfill_rules(metric: str, metric_doc: str, now: datetime) -> tuple[int, int]:
    """Record up to ``RULE_BACKFILL_HOURS`` folded hours before each rule's first complete hour
    (back to ``RULE_BACKFILL``); returns (rule hours, documents) written."""
    rules = rules_of(metric)
    if not rules:
        return 0, 0
    client = get_firestore()
    ref = client.collection(FOLDS).document(metric_doc)
    snapshot = ref.get()
    doc = snapshot.to_dict() or {} if snapshot.exists else {}
    folded = doc.get("folded_until")
    if not isinstance(folded, datetime) or isinstance(doc.get("target"), datetime):
        return 0, 0  # no pass finished yet, or one in progress: it records the rules itself
    horizon = bucket_start(now - RULE_BACKFILL, "hour")
    since = recorded_since(doc)
    # Rules sharing their first complete hour (the usual case) are backfilled in one read.
    groups: dict[datetime, list[RecordingRule]] = {}
    for rule in rules:
        first = since.get(rule.id)
        if first is not None and first > horizon:
            groups.setdefault(first, []).append(rule)
    rule_hours = documents = 0
    for first, group in groups.items():
        low = max(horizon, first - timedelta(hours=RULE_BACKFILL_HOURS))
        writes = record_rule_hours(metric_doc, group, low, first)
        # Hours before ``first`` are read raw until the transaction below: written in any order.
        for chunk in range(0, len(writes), TXN_DOCUMENTS):
            batch = client.batch()
            for target, body in writes[chunk : chunk + TXN_DOCUMENTS]:
                batch.set(target, body)
            batch.commit()
        moved = _lower_recorded_since(ref, folded, {rule.id: first for rule in group}, low)
        rule_hours += len(writes)
        documents += len(writes) + (1 if moved else 0)
        log.info(
            "recording rules backfilled",
            extra={"metric": metric, "rules": len(group), "from": low.isoformat(), "moved": moved},
        )
    return rule_hours, documents


def _lower_recorded_since(ref: Any, folded: datetime, expected: dict[str, datetime], low: datetime) -> bool:
    """Move the rules' first complete hour down to ``low`` if nothing moved meanwhile."""

    def lower(transaction: Any) -> bool:
        snapshot = ref.get(transaction=transaction)
        doc = snapshot.to_dict() or {} if snapshot.exists else {}
        since = recorded_since(doc)
        if doc.get("folded_until") != folded or any(since.get(rule) != at for rule, at in expected.items()):
            return False
        lowered = {**since, **dict.fromkeys(expected, low)}
        transaction.set(ref, {**doc, RULES_FIELD: lowered, "updated": utcnow()})
        return True

    return bool(run_transaction(lower))
