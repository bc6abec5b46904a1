"""Cumulative stream states kept per origin and bucket: the streams one sender (an SDK process and
meter: its resource and scope) has in one bucket share one document,
``metric_stream_groups/{group}``, so an export of 10,000 series writes ~100 state documents, not
10,000.

A group document holds ``streams`` (stream id -> its last point, as ``cumulative.py`` stores it),
``applied`` (the batches that wrote it within the lateness allowance) and ``expire_at``. A stream
unit (``write_units.Unit``) is applied whole with its document in one transaction, so a retry of a
batch the document lists finds its streams there: those are duplicates. A stream the document
lists the batch for but does not hold was not in that unit (its series was refused then, e.g. by
the series limit) and is applied now. A stream not heard from for ``ION_METRICS_STREAM_MEMORY_DAYS``
is dropped from its document when the document is next written; a silent sender's document expires.

States written before groups existed (one ``metric_streams/{stream}`` document per stream) are
read for a stream its group does not hold yet, so an upgrade neither counts a stream's total
again nor applies a batch twice; those documents expire by their TTL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from functions.ingestion.aggregate import Cell, SeriesBatch
from functions.ingestion.cumulative import resolve
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.write_units import Unit, applied_entry, kept_entries, lists_batch, minute_of
from shared.metrics.store import APPLIED, stored_size

STREAMS_FIELD = "streams"


@dataclass
class StreamsApplied:
    """What applying one stream unit gives: cells per series, refusals, duplicates, and the group
    document to write (None: nothing changed)."""

    cells: list[tuple[SeriesBatch, dict[int, Cell]]] = field(default_factory=list)
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # (metric, reason, points)
    duplicates: list[SeriesBatch] = field(default_factory=list)
    document: dict[str, Any] | None = None


def missing_streams(unit: Unit, stored: dict[str, Any] | None) -> list[str]:
    """The unit's streams its group document does not hold (their older states may be in
    ``metric_streams``)."""
    held = (stored or {}).get(STREAMS_FIELD) or {}
    return [stream for stream in unit.streams if stream not in held]


def apply_streams(
    unit: Unit,
    stored: dict[str, Any] | None,
    legacy: dict[str, dict[str, Any]],
    token: str,
    now: datetime,
    *,
    memory: timedelta,
    oldest: int,
    too_large: Any,
) -> StreamsApplied:
    """Apply ``unit``'s cumulative points against its group document ``stored`` (and the legacy
    per-stream states ``legacy``). ``too_large(document)`` answers why a document cannot be
    stored, or None."""
    out = StreamsApplied()
    # A first point counts whole only when its start lies within the lateness allowance.
    whole_within_ns = get_ingestion_settings().max_age_seconds * 1_000_000_000
    held: dict[str, Any] = dict((stored or {}).get(STREAMS_FIELD) or {})
    listed = lists_batch(stored, token)
    applied: list[tuple[SeriesBatch, dict[int, Cell], dict[str, dict[str, Any]], int]] = []
    for series in unit.series:
        fresh = [
            stream
            for stream in unit.streams_of(series)
            if not (listed and stream in held) and not lists_batch(legacy.get(stream), token)
        ]
        if not fresh:
            out.duplicates.append(series)
            continue
        states = {stream: held.get(stream) or legacy.get(stream) for stream in fresh}
        # Only these streams' points: the series' cells are its cells units' business.
        part = dataclasses.replace(series, minutes={}, streams={s: series.streams[s] for s in fresh})
        cells, new_states, refused = resolve(part, states, minute_of, whole_within_ns)
        out.refused.extend((series.metric, reason, 1) for reason in refused)
        points = sum(len(series.streams[s]) for s in fresh) - len(refused)
        applied.append((series, cells, new_states, points))
    forget_before = (now - memory).timestamp() * 1e9
    kept = {k: v for k, v in held.items() if int(v.get("time", 0)) >= forget_before}
    entries = kept_entries(stored, oldest)
    if not listed:
        entries.append(applied_entry(token, (unit.minutes[-1] + 1) * 60))

    def document() -> dict[str, Any]:
        streams = dict(kept)
        for _, _, new_states, _ in applied:
            streams.update(new_states)
        return {
            "metric": unit.series[0].metric,
            STREAMS_FIELD: streams,
            APPLIED: entries,
            "expire_at": now + memory,
        }

    if not any(new_states for _, _, new_states, _ in applied):
        out.cells = [(series, cells) for series, cells, _, _ in applied]
        return out
    doc = document()
    # States that cannot be stored: the series with the largest new states are refused (their
    # points, their streams left as they were) until the document fits.
    applied.sort(key=lambda item: stored_size(item[2]))
    while (reason := too_large(doc)) is not None and applied:
        series, _, _, points = applied.pop()
        out.refused.append((series.metric, reason, points))
        doc = document()
    out.cells = [(series, cells) for series, cells, _, _ in applied]
    if reason is None and any(new_states for _, _, new_states, _ in applied):
        out.document = doc
    return out
