"""In-process metrics under OpenTelemetry names, shipped in batches as one OTLP request.

Why not the OpenTelemetry SDK: its periodic reader flushes from a background thread, and Cloud
Functions throttle the CPU outside requests, so such a thread may never run. Here the aggregator
is plain data guarded by a lock; ``maybe_flush()`` is called at the end of a request and ships
the batch when it is older than ``ION_METRICS_FLUSH_SECONDS`` or holds too many series.

A batch is one ``ExportMetricsServiceRequest`` (opentelemetry-proto messages) published to the
Pub/Sub topic ``metrics`` with the attribute ``content_type=application/x-protobuf``, which
metric ingestion (``ingest_pubsub``) decodes. Counters are delta monotonic Sums, durations and
other distributions delta ExponentialHistograms at scale 6 (bucket bounds 2^(1/64) ≈ 1.09%
apart, so any value inside a bucket is within 0.55% of the bucket's midpoint), gauges last-value
Gauges. A failed publish is logged and the very same bytes are published again at the next flush
(at most ``ION_METRICS_MAX_UNSENT_BATCHES`` kept): a publish that timed out may still have been
delivered, and ingestion deduplicates a batch by its content hash, so resending identical bytes
can never count twice where merging into a new batch would. It never fails the caller's request.

    telemetry = get_telemetry("routing")
    requests = telemetry.counter("ion.cache.requests", "{request}", "Cache lookups")
    requests.add(1, (("tier", "l1"), ("result", "hit")))
    ...
    telemetry.maybe_flush()   # at the end of every request
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logging import get_logger
from shared.settings import get_settings

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

AttrValue = str | int | float | bool
Attributes = tuple[tuple[str, AttrValue], ...]
Publisher = Callable[[bytes], None]
Kind = Literal["sum", "histogram", "gauge"]

SCALE = 6
MAX_BUCKETS = 4096  # a wider spread is exported at a coarser scale (never happens for latencies)
_SCALE_FACTOR = math.ldexp(1.0 / math.log(2), SCALE)
CONTENT_TYPE = "application/x-protobuf"

log = get_logger("telemetry")


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Off: metrics are still aggregated (cheap) but batches are dropped instead of published.
    enabled: bool = Field(default=True, validation_alias="ION_METRICS_ENABLED")
    flush_seconds: float = Field(default=10.0, gt=0, validation_alias="ION_METRICS_FLUSH_SECONDS")
    max_series: int = Field(default=2000, ge=1, validation_alias="ION_METRICS_MAX_SERIES")
    max_pending_series: int = Field(default=8000, ge=1, validation_alias="ION_METRICS_MAX_PENDING_SERIES")
    max_unsent_batches: int = Field(default=6, ge=1, validation_alias="ION_METRICS_MAX_UNSENT_BATCHES")
    topic: str = Field(default="metrics", validation_alias="ION_METRICS_TOPIC")
    publish_timeout_seconds: float = Field(
        default=3.0, gt=0, validation_alias="ION_METRICS_PUBLISH_TIMEOUT_SECONDS"
    )


def map_to_index(value: float) -> int:
    """Index of the bucket (base^i, base^(i+1)] holding ``value`` > 0, base = 2^(2^-SCALE).

    As the OpenTelemetry spec's logarithm mapping: exact powers of two go to the bucket below,
    computed from the exponent because log() may round them either way.
    """
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:
        return ((exponent - 1) << SCALE) - 1
    return math.floor(math.log(value) * _SCALE_FACTOR)


class _Sum:
    __slots__ = ("start", "value")

    def __init__(self, start: int) -> None:
        self.start = start
        self.value: float = 0


class _Gauge:
    __slots__ = ("start", "time", "value")

    def __init__(self, start: int) -> None:
        self.start = start
        self.time = start
        self.value: float = 0


class _Histogram:
    __slots__ = ("count", "max", "min", "negative", "positive", "start", "sum", "zero")

    def __init__(self, start: int) -> None:
        self.start = start
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero = 0
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}

    def record(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if value > 0:
            index = map_to_index(value)
            self.positive[index] = self.positive.get(index, 0) + 1
        elif value < 0:
            index = map_to_index(-value)
            self.negative[index] = self.negative.get(index, 0) + 1
        else:
            self.zero += 1


_Accumulator = _Sum | _Gauge | _Histogram


class Instrument:
    __slots__ = ("_telemetry", "description", "kind", "name", "unit")

    def __init__(self, telemetry: Telemetry, name: str, kind: Kind, unit: str, description: str) -> None:
        self._telemetry = telemetry
        self.name = name
        self.kind = kind
        self.unit = unit
        self.description = description


class Counter(Instrument):
    __slots__ = ()

    def add(self, value: float = 1, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        with telemetry._lock:
            acc = telemetry._series.get((self.name, attributes))
            if acc is None:
                acc = telemetry._new_series(self.name, attributes, _Sum)
                if acc is None:
                    return
            acc.value += value  # type: ignore[union-attr]


class Histogram(Instrument):
    __slots__ = ()

    def record(self, value: float, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        with telemetry._lock:
            acc = telemetry._series.get((self.name, attributes))
            if acc is None:
                acc = telemetry._new_series(self.name, attributes, _Histogram)
                if acc is None:
                    return
            acc.record(value)  # type: ignore[union-attr]


class Gauge(Instrument):
    __slots__ = ()

    def set(self, value: float, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        with telemetry._lock:
            acc = telemetry._series.get((self.name, attributes))
            if acc is None:
                acc = telemetry._new_series(self.name, attributes, _Gauge)
                if acc is None:
                    return
            acc.value = value  # type: ignore[union-attr]
            acc.time = time.time_ns()  # type: ignore[union-attr]


_I = TypeVar("_I", bound=Instrument)


class Telemetry:
    """One process's metrics for one service; thread-safe; flushed by whoever calls maybe_flush."""

    def __init__(
        self,
        service_name: str,
        *,
        publish: Publisher | None = None,
        settings: TelemetrySettings | None = None,
        region: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or TelemetrySettings()
        self.service_name = service_name
        self.region = region or get_settings().region
        self.instance_id = uuid.uuid4().hex
        self._publish = publish or self._publish_to_pubsub
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._instruments: dict[str, Instrument] = {}
        self._series: dict[tuple[str, Attributes], _Accumulator] = {}
        self._next_flush = monotonic() + self.settings.flush_seconds
        self._size_flush_after = 0.0  # after a failed publish, a full batch waits like a due one
        self.dropped_series = 0
        self.published_batches = 0
        self.failed_batches = 0
        self.dropped_batches = 0
        # Encoded batches whose publish failed, oldest first; resent byte for byte.
        self._unsent: list[bytes] = []

    # Instruments -------------------------------------------------------------------------------

    def counter(self, name: str, unit: str = "1", description: str = "") -> Counter:
        return self._instrument(Counter, name, "sum", unit, description)

    def histogram(self, name: str, unit: str = "1", description: str = "") -> Histogram:
        return self._instrument(Histogram, name, "histogram", unit, description)

    def gauge(self, name: str, unit: str = "1", description: str = "") -> Gauge:
        return self._instrument(Gauge, name, "gauge", unit, description)

    def _instrument(self, cls: type[_I], name: str, kind: Kind, unit: str, description: str) -> _I:
        existing = self._instruments.get(name)
        if existing is not None:
            if not isinstance(existing, cls):
                raise ValueError(f"metric {name} is already a {existing.kind}")
            return existing
        instrument = cls(self, name, kind, unit, description)
        self._instruments[name] = instrument
        return instrument

    def _new_series(
        self, name: str, attributes: Attributes, factory: type[_Accumulator]
    ) -> _Accumulator | None:
        """Called with the lock held. None when the pending batch is at its bound (counted)."""
        if len(self._series) >= self.settings.max_pending_series:
            self.dropped_series += 1
            return None
        acc = factory(time.time_ns())
        self._series[(name, attributes)] = acc
        return acc

    # Flushing ----------------------------------------------------------------------------------

    def series_count(self) -> int:
        return len(self._series)

    def due(self) -> bool:
        now = self._monotonic()
        if now >= self._next_flush:
            return bool(self._series) or bool(self._unsent)
        return len(self._series) >= self.settings.max_series and now >= self._size_flush_after

    def maybe_flush(self) -> bool | None:
        """Flush when due; None when not due, else whether the publish succeeded. Never raises."""
        if not self.due():
            return None
        return self.flush()

    def flush(self) -> bool:
        """Publish the current batch (after any unsent ones) now; False when a publish failed."""
        if not self._flushing.acquire(blocking=False):
            return False  # another thread is flushing this very batch
        try:
            with self._lock:
                batch, self._series = self._series, {}
                self._next_flush = self._monotonic() + self.settings.flush_seconds
            if not self.settings.enabled:
                return True
            if batch:
                self._unsent.append(self.encode(batch).SerializeToString())
                if len(self._unsent) > self.settings.max_unsent_batches:
                    self._unsent.pop(0)
                    self.dropped_batches += 1
                    log.error("metrics batch dropped: too many unsent", extra={"service": self.service_name})
            while self._unsent:
                try:
                    self._publish(self._unsent[0])
                except Exception as exc:  # noqa: BLE001 - metrics must never fail the request
                    self.failed_batches += 1
                    with self._lock:
                        self._size_flush_after = self._monotonic() + self.settings.flush_seconds
                    log.warning(
                        "metrics publish failed; batch kept to be resent as is",
                        extra={"error": repr(exc), "unsent": len(self._unsent), "service": self.service_name},
                    )
                    return False
                self._unsent.pop(0)
                self.published_batches += 1
            return True
        finally:
            self._flushing.release()

    def unsent_batches(self) -> int:
        return len(self._unsent)

    def _publish_to_pubsub(self, payload: bytes) -> None:
        from shared.pubsub import get_publisher, topic_path

        future = get_publisher().publish(topic_path(self.settings.topic), payload, content_type=CONTENT_TYPE)
        future.result(timeout=self.settings.publish_timeout_seconds)

    # Encoding ----------------------------------------------------------------------------------

    def encode(self, batch: dict[tuple[str, Attributes], _Accumulator]) -> ExportMetricsServiceRequest:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
        from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource

        now = time.time_ns()
        delta = pb.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.CopyFrom(
            Resource(
                attributes=_key_values(
                    (
                        ("service.name", self.service_name),
                        ("service.instance.id", self.instance_id),
                        ("cloud.provider", "gcp"),
                        ("cloud.platform", "gcp_cloud_functions"),
                        ("cloud.region", self.region),
                    )
                )
            )
        )
        scope_metrics = resource_metrics.scope_metrics.add()
        scope_metrics.scope.CopyFrom(InstrumentationScope(name="ion-ops.shared.telemetry", version="1"))
        by_name: dict[str, list[tuple[Attributes, _Accumulator]]] = {}
        for (name, attributes), acc in batch.items():
            by_name.setdefault(name, []).append((attributes, acc))
        for name, series in by_name.items():
            instrument = self._instruments[name]
            metric = scope_metrics.metrics.add(
                name=name, unit=instrument.unit, description=instrument.description
            )
            if instrument.kind == "sum":
                metric.sum.aggregation_temporality = delta
                metric.sum.is_monotonic = True
                for attributes, acc in series:
                    point = metric.sum.data_points.add(start_time_unix_nano=acc.start, time_unix_nano=now)
                    _set_number(point, acc.value)  # type: ignore[union-attr]
                    point.attributes.extend(_key_values(attributes))
            elif instrument.kind == "gauge":
                for attributes, acc in series:
                    point = metric.gauge.data_points.add(
                        start_time_unix_nano=acc.start,
                        time_unix_nano=acc.time,  # type: ignore[union-attr]
                    )
                    _set_number(point, acc.value)  # type: ignore[union-attr]
                    point.attributes.extend(_key_values(attributes))
            else:
                metric.exponential_histogram.aggregation_temporality = delta
                for attributes, acc in series:
                    _encode_histogram(
                        metric.exponential_histogram.data_points.add(),
                        acc,  # type: ignore[arg-type]
                        now,
                    )
                    metric.exponential_histogram.data_points[-1].attributes.extend(_key_values(attributes))
        return request


def _set_number(point: object, value: float) -> None:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**62):
        point.as_int = int(value)  # type: ignore[attr-defined]
    else:
        point.as_double = float(value)  # type: ignore[attr-defined]


def _encode_histogram(point: object, acc: _Histogram, now: int) -> None:
    p = point
    p.start_time_unix_nano = acc.start  # type: ignore[attr-defined]
    p.time_unix_nano = now  # type: ignore[attr-defined]
    p.count = acc.count  # type: ignore[attr-defined]
    p.sum = acc.sum  # type: ignore[attr-defined]
    if acc.count:
        p.min = acc.min  # type: ignore[attr-defined]
        p.max = acc.max  # type: ignore[attr-defined]
    p.zero_count = acc.zero  # type: ignore[attr-defined]
    scale, positive, negative = SCALE, acc.positive, acc.negative
    while _span(positive) > MAX_BUCKETS or _span(negative) > MAX_BUCKETS:
        scale -= 1
        positive, negative = _downscale(positive), _downscale(negative)
    p.scale = scale  # type: ignore[attr-defined]
    for buckets, target in ((positive, p.positive), (negative, p.negative)):  # type: ignore[attr-defined]
        if buckets:
            low, high = min(buckets), max(buckets)
            target.offset = low
            target.bucket_counts.extend(buckets.get(i, 0) for i in range(low, high + 1))


def _span(buckets: dict[int, int]) -> int:
    return max(buckets) - min(buckets) + 1 if buckets else 0


def _downscale(buckets: dict[int, int]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for index, count in buckets.items():
        merged[index >> 1] = merged.get(index >> 1, 0) + count
    return merged


def _key_values(attributes: Attributes) -> list[object]:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    values = []
    for key, value in attributes:
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        else:
            any_value = AnyValue(string_value=str(value))
        values.append(KeyValue(key=key, value=any_value))
    return values


_names: set[str] = set()


@cache
def get_telemetry(service_name: str) -> Telemetry:
    """The process's aggregator for ``service_name``; flushed once more at interpreter exit."""
    telemetry = Telemetry(service_name)
    atexit.register(telemetry.flush)
    _names.add(service_name)
    return telemetry


def reset_telemetry() -> None:
    """Drop every aggregator without flushing (tests change settings between cases)."""
    for name in list(_names):
        atexit.unregister(get_telemetry(name).flush)
    _names.clear()
    get_telemetry.cache_clear()
