"""Gauge and delta sum points recognised across batches, by their stream and time.

A batch is recognised whole by its content (``applied``), but an exporter's retry may re-batch
the same points (an SDK that merges a failed export into the next, a Collector's batch processor):
another content, another batch, and its gauge samples and delta increments were counted twice. As
in Prometheus (a sample with the timestamp of one already stored is dropped when its value is the
same and refused when it differs: the first value is kept) and Cloud Monitoring (one point per
series and end time), a point is identified by its stream (series, and the resource and scope that
sent it) and its time:

- a point an earlier batch stored with the same value is a duplicate: skipped, not refused;
- one stored with another value is refused ("a point ... was stored with another value");
- points of one batch are not compared with each other: a batch is applied whole, once;
- the first write wins, not the last: a rollup holds counts, sums, extremes and a sketch, from
  which a replaced value's minimum or maximum could not be taken back.

Where: each minute rollup keeps, per series, the keys of the keyed points it holds (``pk``: series
id -> packed ``(time, origin tag, value)`` records, 20 bytes each), read and written in the
transaction that already reads and writes that rollup: no document read or write more. The
writer puts a sender's points in the same writer shard whatever the batch (``writer.py``), so a
re-batched point meets its keys. Bounded: past ``MAX_KEYED_POINTS`` points of one series in one
rollup (more than two a second), the series' keys there are dropped and its later points there
are no longer recognised (only the same batch again is, by ``applied``). Cumulative points need
none of this (a point not newer than its stream's last is refused); delta histograms are not
keyed (their points are distributions, not one value).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from functions.ingestion.aggregate import Cell

POINT_KEYS = "pk"
RECORD = struct.Struct("<qId")
# Keys one series keeps in one minute rollup: two points a second from each of its senders' streams
# cost at most 2.4 KB per series and minute.
MAX_KEYED_POINTS = 120
# The keys of a series that had more points in a rollup than that: its points are not keyed there.
UNKEYED = b"\x00"
CONFLICT = (
    "a point of this stream at this time was stored with another value; the first is kept "
    "(as Prometheus and Cloud Monitoring do)"
)

Key = tuple[int, int, float]  # (time_unix_nano, origin tag, value)


def origin_tag(origin: str) -> int:
    """32 bits of an origin id (``labels.origin_id``, hex): which sender's stream a point is of."""
    return int(origin[:8], 16)


def record(cell: Cell, value: float, t: int, origin: int) -> None:
    """A keyed point (a gauge sample, a delta increment) added to its minute's cell."""
    cell.add(value, t)
    keys = cell.keys
    if keys is None:
        cell.keys = [(t, origin, value)]
    else:
        keys.append((t, origin, value))


@dataclass
class Checked:
    """A cell checked against the keys its rollup holds: what to merge, and the keys to store."""

    cell: Cell
    keys: bytes | None  # None: leave the stored keys as they are
    duplicates: int = 0
    conflicts: int = 0


def check(cell: Cell, stored: bytes | None) -> Checked:
    """``cell`` without the points the rollup holds already (``stored``: its keys of the series)."""
    keys = cell.keys
    if keys is None or stored == UNKEYED:
        return Checked(cell, None)
    # Only points an earlier batch stored: one batch is applied whole, once (``applied``).
    known = {(t, origin): value for t, origin, value in RECORD.iter_unpack(stored or b"")}
    fresh: list[Key] = []
    result = Checked(cell, None)
    for key in keys:
        t, origin, value = key
        held = known.get((t, origin))
        if held is None:
            fresh.append(key)
        elif held == value:
            result.duplicates += 1
        else:
            result.conflicts += 1
    if result.duplicates or result.conflicts:
        result.cell = Cell()
        for t, _, value in fresh:
            result.cell.add(value, t)
    if len(known) + len(fresh) > MAX_KEYED_POINTS:
        result.keys = UNKEYED
    elif fresh:
        result.keys = (stored or b"") + b"".join(RECORD.pack(*key) for key in fresh)
    return result
