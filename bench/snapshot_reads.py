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
            client = source.collection._client
            refs = [source.collection.document(name) for name in source.ids]
            return fields(client.get_all(refs, field_paths=source.fields))
        return fields(source.stream())

    served = rule_reads._read
    rule_reads._read = read
    try:
        yield
    finally:
        rule_reads._read = served
