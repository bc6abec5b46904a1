"""Which Firestore collections a block of code queries: a build's tail must not query the minute
rollups (reads by id are not queries)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def queried() -> Iterator[list[str]]:
    """The collections queried in this block (streamed queries and aggregations), by id."""
    from google.cloud.firestore_v1 import aggregation, query

    seen: list[str] = []
    # Every query's request is sent by ``_get_stream_iterator``: ``stream()`` and
    # ``shared.firestore_reads.stream_fields`` alike.
    stream, aggregate = query.Query._get_stream_iterator, aggregation.AggregationQuery.get

    def watched_stream(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(self._parent.id)
        return stream(self, *args, **kwargs)

    def watched_aggregate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(self._nested_query._parent.id)
        return aggregate(self, *args, **kwargs)

    query.Query._get_stream_iterator = watched_stream  # type: ignore[method-assign]
    aggregation.AggregationQuery.get = watched_aggregate  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        query.Query._get_stream_iterator = stream  # type: ignore[method-assign]
        aggregation.AggregationQuery.get = aggregate  # type: ignore[method-assign]
