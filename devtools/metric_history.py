"""Synthetic metric history written into the metric store through the ingestion writer's own
code (registration, packed rollups, exactly-once), for the reports tests and bench: days of
minute rollups in seconds, where replaying them as OTLP would take minutes and be refused as too
old. Nothing here is a second copy of the store format: it builds the writer's ``Batch``.

    history = MetricHistory()
    history.observe("http.server.request.duration", {"region": "us-central1", ...}, at, [0.02, 0.03])
    history.increment("ion.cache.requests", {"tier": "l1", "result": "hit"}, at, 640)
    history.gauge("cloudsql.replication.lag", {"region": "us-central1"}, at, 0.04)
    history.flush()
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from functions.ingestion.aggregate import NANOS, Batch, MetricInfo, SeriesBatch
from shared.metrics.sketch import Sketch
from shared.metrics.store import series_id


class MetricHistory:
    def __init__(self, minutes_per_batch: int = 240) -> None:
        self.batch = Batch()
        self.minutes_per_batch = minutes_per_batch
        self._minutes: set[int] = set()
        self.batches = 0

    def _series(self, metric: str, kind: str, labels: dict[str, str]) -> SeriesBatch:
        sid = series_id(metric, labels)
        series = self.batch.series.get(sid)
        if series is None:
            series = self.batch.series[sid] = SeriesBatch(
                metric=metric, sid=sid, labels=dict(labels), kind=kind
            )
            self.batch.metrics.setdefault(metric, MetricInfo(name=metric, kind=kind))
        return series

    def _at(self, at: datetime) -> int:
        t = int(at.timestamp()) * NANOS
        self._minutes.add(t // (60 * NANOS))
        self.batch.saw(t)
        return t

    def observe(self, metric: str, labels: dict[str, str], at: datetime, values: list[float]) -> None:
        """Histogram observations (each value one sample)."""
        series = self._series(metric, "histogram", labels)
        t = self._at(at)
        cell = series.cell(t)
        for value in values:
            cell.add(value, t)
        series.points += len(values)
        self.batch.accepted += len(values)

    def observe_weighted(
        self, metric: str, labels: dict[str, str], at: datetime, values: list[float], weight: float
    ) -> None:
        """``weight`` observations of each value: a busy minute without a loop per request."""
        series = self._series(metric, "histogram", labels)
        t = self._at(at)
        sketch = Sketch()
        for value in values:
            sketch.add(value, weight)
        total = sum(values) * weight
        series.cell(t).add_distribution(weight * len(values), total, min(values), max(values), sketch, t)
        series.points += 1
        self.batch.accepted += 1

    def increment(self, metric: str, labels: dict[str, str], at: datetime, delta: float) -> None:
        series = self._series(metric, "sum", labels)
        t = self._at(at)
        series.cell(t).add_increment(delta, t)
        series.points += 1
        self.batch.accepted += 1

    def gauge(self, metric: str, labels: dict[str, str], at: datetime, value: float) -> None:
        series = self._series(metric, "gauge", labels)
        t = self._at(at)
        series.cell(t).add(value, t)
        series.points += 1
        self.batch.accepted += 1

    def maybe_flush(self) -> None:
        if len(self._minutes) >= self.minutes_per_batch:
            self.flush()

    def flush(self) -> None:
        from functions.ingestion.series_registry import register_series
        from functions.ingestion.writer import store_batch

        if not self.batch.series:
            return
        register_series(self.batch)
        # A fresh id per batch: ids are how the writer recognises a retried batch.
        digest = hashlib.sha256(f"history-{uuid.uuid4()}".encode()).hexdigest()
        store_batch(self.batch, digest)
        self.batches += 1
        self.batch = Batch()
        self._minutes.clear()


def fold_as_of(now: datetime) -> int:
    """Run the downsampler as it would have run at ``now`` until it has nothing left to fold
    (history older than the 72 h of minute rollups is only readable once folded into hours).
    Returns the hour rollups written."""
    from functions.ingestion.downsample import downsample
    from shared import clock

    previous = clock.set_clock(clock.FrozenClock(now))
    try:
        written = 0
        for _ in range(1000):
            result = downsample()
            written += result.hours_written
            if result.complete:
                return written
        raise RuntimeError("the downsampler did not finish in 1000 runs")
    finally:
        clock.set_clock(previous)


def write_history(
    start: datetime,
    end: datetime,
    minute_of: Callable[[MetricHistory, datetime], None],
    *,
    every: int = 1,
    fold: bool = True,
) -> None:
    """Write ``[start, end)`` day by day, calling ``minute_of(history, minute)`` for every
    ``every``-th minute, and fold each day as the downsampler would have a few hours later, so
    the whole span is readable at both resolutions. ``fold=False`` leaves it in minutes, as the
    last hours before now are (the downsampler folds an hour only once no point can land in it)."""
    from functions.ingestion.settings import get_ingestion_settings

    # Folding as of day_end + delay folds exactly the hours before day_end: the next day's
    # first hour stays open until its minutes are written.
    delay = timedelta(seconds=get_ingestion_settings().fold_delay_seconds)
    day_start = start
    while day_start < end:
        day_end = min(end, day_start + timedelta(days=1))
        history = MetricHistory()
        minute = day_start
        while minute < day_end:
            minute_of(history, minute)
            history.maybe_flush()
            minute += timedelta(minutes=every)
        history.flush()
        if fold:
            fold_as_of(day_end + delay)
        day_start = day_end
