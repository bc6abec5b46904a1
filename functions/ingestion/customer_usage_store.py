"""The customer usage store: a batch's daily counters per customer and its refusal marks
(``customer_usage.py`` takes them out of the batch) written to the day documents (layout:
``shared/metrics/customer_usage.py``).

- **Bounded documents**: a day document of one customer shard and writer shard keeps its stored
  size exact in ``bytes``; a customer entry that would take it past ``ION_METRICS_MAX_DOCUMENT_BYTES``
  less a share kept for refusal marks is refused and marked (the reserve keeps room for the marks).
- **Exactly once**, as the rollups: each document lists the batches applied to it (``applied``,
  in the same transaction as the counters), and a retry skips the documents that list it.
- **Cheap writes**: a transaction reads only ``applied``, ``bytes`` and the entries of the
  batch's customers (a field mask) and updates only those entries, however large the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from google.api_core.exceptions import InvalidArgument
from google.cloud.firestore_v1.field_path import FieldPath

from functions.ingestion.aggregate import Batch
from functions.ingestion.customer_usage import CustomerDay, UsageBatch
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.write_units import applied_entry, applied_token, kept_entries, lists_batch, shard_of
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.metrics.customer_usage import (
    BYTES,
    CUSTOMERS,
    META_DOC,
    OVERFLOW,
    REFUSED,
    RETENTION,
    USAGE,
    USAGE_META,
    customer_shard,
    day_start,
    doc_id,
)
from shared.metrics.store import APPLIED, document_size, stored_size

# Named for customer usage as a whole, as its log queries expect.
log = get_logger("ingestion.customer_usage")

# Share of a day document kept for refusal marks (~30 bytes each; 50,000 bytes of the default
# 900,000): counters stop short of it.
MARKS_RESERVE_SHARE = 18
# Day documents per transaction: a batch usually touches every customer shard of one day in one
# transaction (its writes are the entries it changes, small whatever the documents' size).
TXN_DOCUMENTS = 64


@dataclass
class UsageOutcome:
    documents_written: int = 0
    customers: int = 0
    duplicate_documents: int = 0
    marks: int = 0
    unrecorded_marks: int = 0


def _ensure_since(days: set[date]) -> None:
    """Record the store's first day before writing it: readers take earlier days from the rollups
    (where these metrics were kept before this store). A batch with an earlier day lowers it. One
    read per batch: no process cache, which a store emptied under it (tests) would mislead."""
    first = min(days)
    ref = get_firestore().collection(USAGE_META).document(META_DOC)
    snapshot = ref.get()
    stored = (snapshot.to_dict() or {}).get("since") if snapshot.exists else None
    held = stored.astimezone(UTC).date() if isinstance(stored, datetime) else None
    if held is None or first < held:
        ref.set({"since": day_start(first)})


@dataclass
class _Doc:
    """What one day document receives from a batch."""

    day: date
    shard: int
    customers: dict[str, CustomerDay] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)


def store_customer_usage(usage: UsageBatch, batch: Batch, batch_id: str) -> UsageOutcome:
    """Write ``usage`` exactly once (see the module docstring); refused points are rejected in
    ``batch``. Raises on a transient failure (retry safe)."""
    outcome = UsageOutcome()
    if not usage:
        return outcome
    settings = get_ingestion_settings()
    writer_shard = shard_of(batch_id, settings.write_shards)
    docs: dict[tuple[date, int], _Doc] = {}

    def doc_of(customer: str, day: date) -> _Doc:
        key = (day, customer_shard(customer))
        found = docs.get(key)
        if found is None:
            found = docs[key] = _Doc(day, key[1])
        return found

    for (customer, day), entry in usage.counts.items():
        doc_of(customer, day).customers[customer] = entry
    for (customer, day), points in usage.refused.items():
        target = doc_of(customer, day)
        target.marks[customer] = target.marks.get(customer, 0) + points
    _ensure_since({day for day, _ in docs})
    ordered = [docs[key] for key in sorted(docs)]
    for start in range(0, len(ordered), TXN_DOCUMENTS):
        chunk = ordered[start : start + TXN_DOCUMENTS]
        try:
            result = _apply(chunk, batch_id, writer_shard)
        except InvalidArgument as exc:
            # Firestore refuses what it always will: the chunk's points are refused, not retried.
            log.error("Firestore refused customer usage: %s", exc, extra={"batch_id": batch_id})
            result = _Applied(refused=_all_points(chunk, f"Firestore refused the write: {exc}"))
        outcome.documents_written += result.writes
        outcome.customers += result.customers
        outcome.duplicate_documents += result.duplicates
        outcome.marks += result.marks
        outcome.unrecorded_marks += result.unrecorded
        for metric, reason, points in result.refused:
            batch.reject(metric, reason, points)
            batch.accepted -= points
    return outcome


def _all_points(chunk: list[_Doc], reason: str) -> list[tuple[str, str, int]]:
    return [
        (metric, reason, points)
        for doc in chunk
        for entry in doc.customers.values()
        for metric, points in entry.points.items()
    ]


@dataclass
class _Applied:
    writes: int = 0
    customers: int = 0
    duplicates: int = 0
    marks: int = 0
    unrecorded: int = 0
    refused: list[tuple[str, str, int]] = field(default_factory=list)


def _apply(chunk: list[_Doc], batch_id: str, writer_shard: int) -> _Applied:
    settings = get_ingestion_settings()
    max_bytes = settings.max_document_bytes
    client = get_firestore()
    token = applied_token(batch_id)
    usage = client.collection(USAGE)
    refs = {id(doc): usage.document(doc_id(doc.day, doc.shard, writer_shard)) for doc in chunk}
    customers = sorted({c for doc in chunk for c in (*doc.customers, *doc.marks)})
    mask = [APPLIED, BYTES, OVERFLOW]
    for customer in customers:
        mask += [FieldPath(CUSTOMERS, customer).to_api_repr(), FieldPath(REFUSED, customer).to_api_repr()]

    def apply(transaction: Any) -> _Applied:
        result = _Applied()
        now = utcnow()
        oldest = int(now.timestamp()) - settings.fold_delay_seconds
        stored: dict[str, dict[str, Any] | None] = {}
        for snapshot in client.get_all(list(refs.values()), field_paths=mask, transaction=transaction):
            stored[snapshot.reference.path] = (snapshot.to_dict() or {}) if snapshot.exists else None
        for doc in chunk:
            ref = refs[id(doc)]
            held = stored.get(ref.path)
            if lists_batch(held, token):
                result.duplicates += 1
                continue
            write = _merge(doc, ref.path, held, token, oldest, now, max_bytes, result)
            if held is None:
                transaction.set(ref, write)
            else:
                transaction.update(ref, write)
            result.writes += 1
        return result

    return run_transaction(apply)


def _merge(  # noqa: PLR0917 - one document's merge
    doc: _Doc,
    path: str,
    held: dict[str, Any] | None,
    token: str,
    oldest: int,
    now: datetime,
    max_bytes: int,
    result: _Applied,
) -> dict[str, Any]:
    """The write that adds ``doc``'s counters and marks to the stored document ``held`` (None:
    new), its stored size kept exact in ``bytes``."""
    counters: dict[str, dict[str, Any]] = dict((held or {}).get(CUSTOMERS) or {})
    marks: dict[str, Any] = dict((held or {}).get(REFUSED) or {})
    last = max((entry.last_minute for entry in doc.customers.values()), default=0)
    until = (last + 1) * 60 if last else int(now.timestamp())
    old_applied = list((held or {}).get(APPLIED) or [])
    applied = [*kept_entries(held, oldest), applied_entry(token, until)]
    if held is None:
        size = document_size(
            path,
            {
                "t": now,
                CUSTOMERS: {},
                REFUSED: {},
                APPLIED: [],
                BYTES: 0,
                OVERFLOW: 0,
                "shard": 0,
                "expire_at": now,
            },
        )
    else:
        size = int(held.get(BYTES) or document_size(path, held))
    size += stored_size(applied) - stored_size(old_applied)
    changed: dict[str, Any] = {}
    refused_marks: dict[str, int] = dict(doc.marks)
    overflow = 0
    reserve = max_bytes // MARKS_RESERVE_SHARE
    limit = max_bytes - reserve
    for customer, entry in sorted(doc.customers.items()):
        before = counters.get(customer)
        merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (before or {}).items()}
        for name, counts in entry.fields.items():
            held_counts = merged.setdefault(name, {})
            for key, value in counts.items():
                total = held_counts.get(key, 0) + value
                held_counts[key] = int(total) if float(total).is_integer() else total
        grown = stored_size(merged) - stored_size(before or {})
        if before is None:
            grown += len(customer.encode()) + 1
        if size + grown > limit:
            reason = (
                f"its customer usage day document would pass ION_METRICS_MAX_DOCUMENT_BYTES "
                f"({max_bytes:,}) less {reserve:,} kept for refusal marks (raise CUSTOMER_SHARDS)"
            )
            for metric, points in entry.points.items():
                result.refused.append((metric, reason, points))
                refused_marks[customer] = refused_marks.get(customer, 0) + points
            continue
        size += grown
        counters[customer] = merged
        changed[FieldPath(CUSTOMERS, customer).to_api_repr()] = merged
        result.customers += 1
    for customer, points in sorted(refused_marks.items()):
        before_mark = marks.get(customer)
        grown = 0 if before_mark is not None else len(customer.encode()) + 1 + 8
        if size + grown > max_bytes:
            # Not even the mark fits: the document's ``overflow`` (always there, so it costs no
            # room) counts the points, and readers take every customer of this shard and day as
            # refused. Also in partialSuccess and this log.
            result.unrecorded += 1
            overflow += points
            log.error(
                "customer usage refused and its mark not stored: the day document is full",
                extra={"customer_id": customer, "day": doc.day.isoformat(), "points": points},
            )
            continue
        size += grown
        marks[customer] = int(before_mark or 0) + points
        changed[FieldPath(REFUSED, customer).to_api_repr()] = marks[customer]
        result.marks += 1
    if held is None:
        return {
            "t": day_start(doc.day),
            CUSTOMERS: counters,
            REFUSED: marks,
            APPLIED: applied,
            BYTES: size,
            OVERFLOW: overflow,
            "shard": doc.shard,
            "expire_at": day_start(doc.day) + RETENTION,
        }
    write = {**changed, APPLIED: applied, BYTES: size}
    if overflow:
        write[OVERFLOW] = int(held.get(OVERFLOW) or 0) + overflow
    return write
