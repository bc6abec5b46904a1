"""The customer usage store: counters of the metrics the catalogue declares ``customer_usage``
(routing's per-customer requests and feedback answers), kept per customer and UTC day instead of
as series, so that no per-metric series cap drops a customer. Written by ingestion
(``functions/ingestion/customer_usage_store.py``), read by health (one pass over a window) and by
``shared.metrics.query`` (the same metrics through the query API, for cost and ``/v1/query``).

::

    customer_usage/{yyyymmdd}-{customer shard}-{writer shard}
        t          the day's start (UTC midnight)
        c          {customer: {field: {"value:value": count}}}: the metric's ``field`` and the
                   values of its ``counted_by`` labels joined by ':' (``route_key:ok``)
        refused    {customer: points}: points of the customer that day that were refused
                   (over the document's size, a value outside the catalogue, a late point...)
        overflow   points refused whose mark did not fit either: every customer of the shard
                   counts as refused that day
        applied    the batches applied (exactly once, as the metric store's rollups)
        bytes      the document's stored size by Firestore's rules (kept exact by the writer)
        expire_at  t + 90 days (TTL)
    customer_usage_meta/store
        since      the first day the store was written: earlier days are in the metric store's
                   rollups (written before this store existed), read from there

A customer is in shard ``hash(customer) % CUSTOMER_SHARDS``; a batch writes its writer shard
(hash of the batch, ``ION_METRICS_WRITE_SHARDS``), so concurrent batches spread over documents.
Readers sum every document of a day whatever its shards: one range query on ``t`` reads a window
in ``days x customer shards x writer shards`` documents at most, whatever the number of customers.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.metrics.catalogue import CustomerUsage, customer_usage_metrics

USAGE = "customer_usage"
USAGE_META = "customer_usage_meta"
META_DOC = "store"
CUSTOMERS = "c"
REFUSED = "refused"
BYTES = "bytes"
OVERFLOW = "overflow"
# 32 shards keep a day document near 50 KB at 10,000 customers and 250 KB at 50,000 (a customer
# entry is ~150 bytes), far under Firestore's 1 MiB; changing it is safe (readers sum all
# documents of a day), though a batch retried across the change could be counted twice.
CUSTOMER_SHARDS = 32
RETENTION = timedelta(days=90)
SEPARATOR = ":"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def day_of_minute(minute: int) -> date:
    return datetime.fromtimestamp(minute * 60, UTC).date()


def customer_shard(customer: str) -> int:
    return int.from_bytes(hashlib.blake2b(customer.encode(), digest_size=4).digest(), "big") % CUSTOMER_SHARDS


def doc_id(day: date, shard: int, writer_shard: int) -> str:
    return f"{day:%Y%m%d}-{shard:02d}-{writer_shard}"


def counter_key(values: list[str]) -> str:
    return SEPARATOR.join(values)


def spec_of(metric: str) -> CustomerUsage | None:
    return customer_usage_metrics().get(metric)


@dataclass
class UsageDays:
    """What the store holds for a window: per customer and day, each field's counters, and the
    points refused; ``since`` the store's first day, ``reads`` the documents read."""

    counters: dict[str, dict[date, dict[str, dict[str, float]]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    refused: dict[str, dict[date, float]] = field(default_factory=lambda: defaultdict(dict))
    # (day, customer shard) -> points refused without a mark: the whole shard's usage is unsure.
    overflow: dict[tuple[date, int], float] = field(default_factory=dict)
    since: date | None = None
    reads: int = 0

    def refused_of(self, customer: str) -> float:
        """Points of ``customer`` refused in the window: its marks, and the overflow of its shard."""
        points = sum(self.refused.get(customer, {}).values())
        if self.overflow:
            shard = customer_shard(customer)
            points += sum(n for (_, s), n in self.overflow.items() if s == shard)
        return points

    def add(self, day: date, doc: Mapping[str, Any]) -> None:
        for customer, fields in (doc.get(CUSTOMERS) or {}).items():
            days = self.counters[customer].setdefault(day, {})
            for name, counts in (fields or {}).items():
                held = days.setdefault(name, {})
                for key, value in (counts or {}).items():
                    held[key] = held.get(key, 0.0) + float(value)
        for customer, points in (doc.get(REFUSED) or {}).items():
            self.refused[customer][day] = self.refused[customer].get(day, 0.0) + float(points)
        overflow = doc.get(OVERFLOW) or 0
        if overflow and isinstance(doc.get("shard"), int):
            key = (day, doc["shard"])
            self.overflow[key] = self.overflow.get(key, 0.0) + float(overflow)


def store_since() -> tuple[date | None, int]:
    """The store's first day (None before its first write) and the reads it took (1)."""
    from shared.firestore import get_firestore

    snapshot = get_firestore().collection(USAGE_META).document(META_DOC).get()
    since = (snapshot.to_dict() or {}).get("since") if snapshot.exists else None
    return (since.date() if isinstance(since, datetime) else None), 1


def read_days(start: date, end: date, *, fields: list[str] | None = None) -> UsageDays:
    """Every day document of ``[start, end)``, summed per customer and day (only ``fields``'
    counters when given; refusals always): one range query, whatever the number of customers."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.firestore import get_firestore

    found = UsageDays()
    found.since, found.reads = store_since()
    if end <= start:
        return found
    query = (
        get_firestore()
        .collection(USAGE)
        .where(filter=FieldFilter("t", ">=", day_start(start)))
        .where(filter=FieldFilter("t", "<", day_start(end)))
    )
    # ``applied`` and the bookkeeping are never read (a mask cannot name one field of every
    # customer, so ``fields`` is applied here).
    query = query.select(["t", "shard", CUSTOMERS, REFUSED, OVERFLOW])
    for snapshot in query.stream():
        found.reads += 1
        doc = snapshot.to_dict() or {}
        at = doc.get("t")
        if not isinstance(at, datetime):
            continue
        if fields is not None:
            doc = {
                CUSTOMERS: {
                    c: {k: v for k, v in (f or {}).items() if k in fields}
                    for c, f in (doc.get(CUSTOMERS) or {}).items()
                },
                REFUSED: doc.get(REFUSED) or {},
                OVERFLOW: doc.get(OVERFLOW) or 0,
                "shard": doc.get("shard"),
            }
        found.add(at.astimezone(UTC).date(), doc)
    return found


def labels_of(spec: CustomerUsage, customer: str, key: str) -> dict[str, str]:
    """The labels of one counter: the customer and its ``counted_by`` values."""
    values = key.split(SEPARATOR)
    return {spec.customer: customer, **dict(zip(spec.counted_by, values, strict=False))}
