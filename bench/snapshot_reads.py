"""Metric reads as they were before ``shared.firestore_reads``, for the benches' side-by-side
columns: every rollup read through the client's ``stream()`` and ``get_all()``, a snapshot per
document (its fields taken without ``to_dict()``'s copy, as the reads did then)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def snapshot_reads() -> Iterator[None]:
    from shared.metrics import rule_reads
    from shared.metrics.stamps import RollupsById

    def fields(snapshots: Any) -> Any:
        return (s._data for s in snapshots if s.exists)

    def read(source: Any) -> Any:
        if isinstance(source, RollupsById):
            return by_id(source)
        return fields(source.stream())

    def by_id(source: Any) -> Any:
        client, chunk = source.collection._client, source.CHUNK
        for first in range(0, len(source.ids), chunk):
            refs = [source.collection.document(name) for name in source.ids[first : first + chunk]]
            yield from fields(client.get_all(refs, field_paths=source.fields))

    served = rule_reads._read
    rule_reads._read = read
    try:
        yield
    finally:
        rule_reads._read = served
