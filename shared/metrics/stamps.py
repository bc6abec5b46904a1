"""Stamp documents: per bucket, hour and writer shard, the write stamps of its minute rollups
(``store.py``'s docstring), merged by the ingestion writer in the transaction that writes the
rollups. A build reads the tail's stamp documents with one query and the rollups they name by id
(``rule_reads.tail_documents``), instead of querying the minute rollups."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.metrics.store import RETENTION, bucket_key_of, metric_ref, rollup_id

MINUTE_STAMPS = "metric_minute_stamps"
# Field of a stamp document: the minute of the hour -> that rollup's ``ws``.
STAMPS_MAP = "m"


def stamps_document(bucket: int | None, hour: datetime, shard: int, stamps: dict[str, int]) -> dict[str, Any]:
    """The fields a rollup write merges into its stamp document: ``stamps`` maps minutes of the
    hour (``minute_key``) to their rollups' new ``ws``; the other fields are the same every time."""
    return {
        "bucket": bucket,
        "t": hour,
        "shard": shard,
        "expire_at": hour + timedelta(hours=1) + RETENTION["minute"],
        STAMPS_MAP: stamps,
    }


def minute_key(minute: datetime) -> str:
    """A minute's key in its stamp document's map: its minute of the hour."""
    return str(int(minute.timestamp()) % 3600 // 60)


@dataclass(frozen=True, slots=True)
class StampedMinute:
    """A minute rollup as its stamp document names it."""

    key: str  # the bucket's key
    shard: int
    minute: datetime
    stamp: int  # its ``ws``

    @property
    def rollup(self) -> str:
        return rollup_id(self.key, self.minute, self.shard)

    def text(self) -> str:
        return f"{self.rollup}={self.stamp}"


def stamped_minutes(doc_id: str, doc: Mapping[str, Any]) -> list[StampedMinute]:
    """The minute rollups a stamp document names (none if it is not one)."""
    hour, shard, stamps = doc.get("t"), doc.get("shard"), doc.get(STAMPS_MAP)
    if not isinstance(hour, datetime) or not isinstance(shard, int) or not isinstance(stamps, dict):
        return []
    key = bucket_key_of(doc_id)
    return [
        StampedMinute(key, shard, hour + timedelta(minutes=int(minute)), stamp)
        for minute, stamp in stamps.items()
        if minute.isdigit() and int(minute) < 60 and isinstance(stamp, int)
    ]


def written_digest(minutes: Iterable[StampedMinute]) -> str:
    """Digest of a set of minute rollups and their stamps: equal only for the same rollups, each
    written as often."""
    text = "\n".join(sorted(minute.text() for minute in minutes))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def minute_stamps(metric: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(MINUTE_STAMPS)


class RollupsById:
    """Minute rollups named by their stamp documents, read by id where a range query was: the
    same ``select`` as a query (``documents`` reads either)."""

    # Ids per batched read.
    CHUNK = 300

    def __init__(self, collection: Any, ids: list[str], fields: list[str] | None = None) -> None:
        self.collection, self.ids, self.fields = collection, ids, fields

    def select(self, fields: list[str]) -> RollupsById:
        return RollupsById(self.collection, self.ids, list(fields))

    def read(self) -> Iterator[dict[str, Any]]:
        """The fields of every rollup that exists."""
        from shared.firestore_reads import get_all_fields

        client = self.collection._client
        for first in range(0, len(self.ids), self.CHUNK):
            refs = [self.collection.document(name) for name in self.ids[first : first + self.CHUNK]]
            # A rollup named but gone was deleted by TTL (days after its hour was folded).
            found = get_all_fields(client, refs, self.fields)
            yield from (fields for _, fields in found if fields is not None)
