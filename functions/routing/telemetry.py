"""In-process metrics under OpenTelemetry names, shipped in batches as one OTLP request.

Three things ship a batch, so none is stranded: ``maybe_flush()`` at the end of a request (when
the batch is older than ``ION_METRICS_FLUSH_SECONDS`` or holds too many series); a daemon thread
that does the same every second between requests (Cloud Functions throttle the CPU outside
requests, so this thread runs only where the platform gives the instance CPU: always-allocated
CPU, a busy instance, the seconds after a response); and a final flush when the process exits
(Cloud Run sends SIGTERM before stopping an instance; the functions-framework worker then exits
through ``atexit``, and a process that takes SIGTERM in its main thread gets a handler that flushes
first). Plain data under a lock, not the OpenTelemetry SDK, whose reader only has the thread.

A batch is one ``ExportMetricsServiceRequest`` (opentelemetry-proto messages) published to the
Pub/Sub topic ``metrics`` with the attribute ``content_type=application/x-protobuf``, which
metric ingestion (``ingest_pubsub``) decodes. Counters are delta monotonic Sums, durations and
other distributions delta ExponentialHistograms at scale 6 (bucket bounds 2^(1/64) ≈ 1.09%
apart, so any value inside a bucket is within 0.55% of the bucket's midpoint), gauges last-value
Gauges. A failed publish is logged and the very same bytes are published again at the next flush
(at most ``ION_METRICS_MAX_UNSENT_BATCHES`` kept): a publish that timed out may still have been
delivered, and ingestion deduplicates a batch by its content hash, so resending identical bytes
can never count twice where merging into a new batch would. It never fails the caller's request.

    telemetry = get_telemetry("routing")   # process_telemetry.py: one per service and process
    requests = telemetry.counter("ion.cache.requests", "{request}", "Cache lookups")
    requests.add(1, (("tier", "l1"), ("result", "hit")))
    ...
    telemetry.maybe_flush()   # at the end of every request
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.routing.otlp_metrics import (
    SCALE,
    Accumulator,
    Attributes,
    AttrValue,
    GaugeAccumulator,
    HistogramAccumulator,
    Kind,
    SumAccumulator,
    encode_request,
    map_to_index,
)
from shared.logging import get_logger
from shared.settings import get_settings

__all__ = ["SCALE", "AttrValue", "Attributes", "Telemetry", "TelemetrySettings", "map_to_index"]

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

Publisher = Callable[[bytes], None]
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
    # The flushing thread between requests (off: only requests and the exit flush ship batches).
    background_flush: bool = Field(default=True, validation_alias="ION_METRICS_BACKGROUND_FLUSH")


class Instrument:
    __slots__ = ("_telemetry", "description", "kind", "name", "unit")

    def __init__(self, telemetry: Telemetry, name: str, kind: Kind, unit: str, description: str) -> None:
        self._telemetry = telemetry
        self.name = name
        self.kind = kind
        self.unit = unit
        self.description = description


# The two recordings of every request (counter add, histogram record) look their series up
# inline rather than through ``Telemetry._accumulator``: a call less each, on every request.


class Counter(Instrument):
    __slots__ = ()

    def add(self, value: float = 1, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        key = (self.name, attributes)
        with telemetry._lock:
            acc = telemetry._series.get(key)
            if acc is None:
                acc = telemetry._accumulator(self.name, attributes, SumAccumulator)
                if acc is None:
                    return
            acc.value += value  # type: ignore[union-attr] - one name is one kind (see _accumulator)


class Histogram(Instrument):
    __slots__ = ()

    def record(self, value: float, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        key = (self.name, attributes)
        with telemetry._lock:
            acc = telemetry._series.get(key)
            if acc is None:
                acc = telemetry._accumulator(self.name, attributes, HistogramAccumulator)
                if acc is None:
                    return
            acc.record(value)  # type: ignore[union-attr] - one name is one kind (see _accumulator)


class Gauge(Instrument):
    __slots__ = ()

    def set(self, value: float, attributes: Attributes = ()) -> None:
        telemetry = self._telemetry
        with telemetry._lock:
            acc = telemetry._accumulator(self.name, attributes, GaugeAccumulator)
            if acc is not None:
                acc.value = value
                acc.time = telemetry.clock_ns()


_I = TypeVar("_I", bound=Instrument)
_A = TypeVar("_A", SumAccumulator, GaugeAccumulator, HistogramAccumulator)


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
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings or TelemetrySettings()
        self.service_name = service_name
        self.region = region or get_settings().region
        self.instance_id = uuid.uuid4().hex
        self._publish = publish or self._publish_to_pubsub
        self._monotonic = monotonic
        # The points' wall-clock time (a replay of past days, such as the health bench, sets it).
        self.clock_ns = clock_ns
        # Re-entrant: a SIGTERM handler flushing in the main thread may interrupt a recording.
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._instruments: dict[str, Instrument] = {}
        self._series: dict[tuple[str, Attributes], Accumulator] = {}
        self._next_flush = monotonic() + self.settings.flush_seconds
        self._size_flush_after = 0.0  # after a failed publish, a full batch waits like a due one
        self.dropped_series = 0
        self.published_batches = 0
        self.failed_batches = 0
        self.dropped_batches = 0
        # Encoded batches whose publish failed, oldest first; resent byte for byte.
        self._unsent: list[bytes] = []
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()

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

    def _accumulator(self, name: str, attributes: Attributes, factory: type[_A]) -> _A | None:
        """Called with the lock held: the series' accumulator, made on first use; None when the
        pending batch is at its bound (counted)."""
        acc = self._series.get((name, attributes))
        if acc is None:
            if len(self._series) >= self.settings.max_pending_series:
                self.dropped_series += 1
                return None
            acc = self._series[(name, attributes)] = factory(self.clock_ns())
        # One name is one kind of instrument (checked when it is made), so one kind of accumulator.
        assert isinstance(acc, factory)
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

    def start_background_flush(self) -> None:
        """Ship due batches from a daemon thread, waking every second (or every flush interval
        when shorter), so a batch waits at most the interval plus a second when the CPU allows."""
        if self._flusher is not None or not self.settings.background_flush:
            return
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"telemetry-{self.service_name}", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        self._prepare_publisher()
        wake = min(1.0, self.settings.flush_seconds)
        while not self._stopping.wait(wake):
            try:
                self.maybe_flush()
            except Exception:
                log.exception("background metrics flush failed", extra={"service": self.service_name})

    def _prepare_publisher(self) -> None:
        """Import and create the Pub/Sub client as the instance starts, not at its first flush: the
        import holds the GIL for about half a second, which at the first flush (10 s in) stalled
        every request in flight (p99 0.4-1 s under wrk), and at start joins the cold start."""
        if not self.settings.enabled or self._publish != self._publish_to_pubsub:
            return
        try:
            from shared.pubsub import get_publisher

            get_publisher()
        except Exception:  # the first publish reports it, and retries
            log.exception("preparing the metrics publisher failed", extra={"service": self.service_name})

    def stop_background_flush(self) -> None:
        self._stopping.set()

    def unsent_batches(self) -> int:
        return len(self._unsent)

    def _publish_to_pubsub(self, payload: bytes) -> None:
        from shared.pubsub import get_publisher, topic_path

        future = get_publisher().publish(topic_path(self.settings.topic), payload, content_type=CONTENT_TYPE)
        future.result(timeout=self.settings.publish_timeout_seconds)

    # Encoding ----------------------------------------------------------------------------------

    def encode(self, batch: dict[tuple[str, Attributes], Accumulator]) -> ExportMetricsServiceRequest:
        resource: Attributes = (
            ("service.name", self.service_name),
            ("service.instance.id", self.instance_id),
            ("cloud.provider", "gcp"),
            ("cloud.platform", "gcp_cloud_functions"),
            ("cloud.region", self.region),
        )
        metrics = {name: (i.kind, i.unit, i.description) for name, i in self._instruments.items()}
        # The instrumentation scope keeps the name it first shipped under (ingestion keys series by it).
        return encode_request(resource, ("ion-ops.shared.telemetry", "1"), metrics, batch, self.clock_ns())
