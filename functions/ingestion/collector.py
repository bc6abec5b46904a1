"""The scheduled collector: Cloud Run and Cloud SQL time series from Cloud Monitoring into the same
metric store, through google-cloud-monitoring's ``MetricServiceClient.list_time_series``.

Each run (``POST /v1/collect``, every minute) collects whole minutes from a cursor
(``metric_collector/state``) up to ``now - 3 min`` (Monitoring's ingestion delay), at most
``ION_COLLECTOR_MAX_CATCH_UP_SECONDS`` (30 minutes) at a time. Every minute becomes one OTLP
batch, built deterministically (series and points sorted),
and goes through the same ingestion path as any exporter's batch, identified by its project and
minute (``minute_batch_id``), not its content: a second run over the same minute (an overlapping or
retried run, which may read late points the first did not) stores nothing twice. The cursor moves
only after a minute is stored.

Names (OpenTelemetry style, labels ``service``/``database`` and ``region``):

=============================================  ===========================================  ==========
Cloud Monitoring metric type                    stored as                                    kind
=============================================  ===========================================  ==========
run.googleapis.com/request_count               cloudrun.request.count (response_code_class) sum
run.googleapis.com/request_latencies           cloudrun.request.latency (ms)                histogram
run.googleapis.com/container/cpu/utilizations  cloudrun.container.cpu.utilization (0-1)     histogram
run.googleapis.com/container/memory/utiliz...  cloudrun.container.memory.utilization (0-1)  histogram
run.googleapis.com/container/instance_count    cloudrun.container.instance.count (state)    gauge
cloudsql.googleapis.com/database/cpu/utiliz..  cloudsql.cpu.utilization (0-1)               gauge
cloudsql.googleapis.com/database/memory/util.. cloudsql.memory.utilization (0-1)            gauge
cloudsql.googleapis.com/database/replication/  cloudsql.replication.lag (s)                 gauge
  replica_lag
cloudsql.googleapis.com/database/network/      cloudsql.connections                         gauge
  connections
=============================================  ===========================================  ==========
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.ingestion.otlp import content_hash
from functions.ingestion.settings import get_ingestion_settings
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.logging import get_logger
from shared.settings import get_settings

log = get_logger("ingestion.collector")

STATE = ("metric_collector", "state")
DELAY = timedelta(minutes=3)


@dataclass(frozen=True)
class Source:
    metric_type: str
    name: str
    unit: str
    resource: str  # "run" or "sql"


SOURCES: tuple[Source, ...] = (
    Source("run.googleapis.com/request_count", "cloudrun.request.count", "{request}", "run"),
    Source("run.googleapis.com/request_latencies", "cloudrun.request.latency", "ms", "run"),
    Source("run.googleapis.com/container/cpu/utilizations", "cloudrun.container.cpu.utilization", "1", "run"),
    Source(
        "run.googleapis.com/container/memory/utilizations",
        "cloudrun.container.memory.utilization",
        "1",
        "run",
    ),
    Source(
        "run.googleapis.com/container/instance_count",
        "cloudrun.container.instance.count",
        "{instance}",
        "run",
    ),
    Source("cloudsql.googleapis.com/database/cpu/utilization", "cloudsql.cpu.utilization", "1", "sql"),
    Source("cloudsql.googleapis.com/database/memory/utilization", "cloudsql.memory.utilization", "1", "sql"),
    Source(
        "cloudsql.googleapis.com/database/replication/replica_lag", "cloudsql.replication.lag", "s", "sql"
    ),
    Source(
        "cloudsql.googleapis.com/database/network/connections", "cloudsql.connections", "{connection}", "sql"
    ),
)


class CollectResult(BaseModel):
    minutes: int
    points: int
    rejected: int
    cursor: datetime | None
    sources: int


def monitoring_client() -> Any:
    """The real client: gRPC to Cloud Monitoring, or to ``ION_MONITORING_ENDPOINT`` (host:port,
    plaintext, no credentials) for a local stand-in."""
    from google.cloud import monitoring_v3

    endpoint = get_ingestion_settings().monitoring_endpoint
    if not endpoint:
        return monitoring_v3.MetricServiceClient()
    import grpc
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    channel = grpc.insecure_channel(endpoint.removeprefix("http://"))
    return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))


def _filter(source: Source, run_services: list[str], sql_instances: list[str]) -> str | None:
    if source.resource == "run":
        if not run_services:
            return None
        names = ", ".join(f'"{s}"' for s in run_services)
        return (
            f'metric.type = "{source.metric_type}" AND resource.type = "cloud_run_revision" '
            f"AND resource.labels.service_name = one_of({names})"
        )
    if not sql_instances:
        return None
    names = ", ".join(f'"{s}"' for s in sql_instances)
    return (
        f'metric.type = "{source.metric_type}" AND resource.type = "cloudsql_database" '
        f"AND resource.labels.database_id = one_of({names})"
    )


def _labels(source: Source, series: Any) -> dict[str, str]:
    resource = dict(series.resource.labels)
    labels: dict[str, str] = {}
    if source.resource == "run":
        labels["service"] = resource.get("service_name", "")
        labels["region"] = resource.get("location", "")
    else:
        labels["database"] = resource.get("database_id", "")
        labels["region"] = resource.get("region", "")
    labels.update({k: str(v) for k, v in series.metric.labels.items()})
    return {k: v for k, v in labels.items() if v != ""}


def _bounds(options: Any) -> list[float]:
    """Finite bucket bounds of a Monitoring distribution (its buckets: underflow, finite, overflow)."""
    kind = options.WhichOneof("options")
    if kind == "linear_buckets":
        lin = options.linear_buckets
        return [lin.offset + lin.width * i for i in range(lin.num_finite_buckets + 1)]
    if kind == "exponential_buckets":
        exp = options.exponential_buckets
        return [exp.scale * exp.growth_factor**i for i in range(exp.num_finite_buckets + 1)]
    if kind == "explicit_buckets":
        return list(options.explicit_buckets.bounds)
    return []


def _to_point(source: Source, series: Any, point: Any, labels: dict[str, str]) -> Any:
    """One Monitoring point as an OTLP metric (delta for DELTA/CUMULATIVE kinds, gauge otherwise)."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

    attrs = [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in sorted(labels.items())]
    end = _nanos(point.interval.end_time)
    start = _nanos(point.interval.start_time) if point.interval.start_time else end
    value = point.value._pb
    which = value.WhichOneof("value")
    delta = m.AGGREGATION_TEMPORALITY_DELTA
    if which == "distribution_value":
        dist = value.distribution_value
        bounds = _bounds(dist.bucket_options)
        counts = list(dist.bucket_counts) + [0] * max(0, len(bounds) + 1 - len(dist.bucket_counts))
        counts = counts[: len(bounds) + 1] if bounds else []
        if counts and sum(counts) != dist.count:
            counts[-1] += dist.count - sum(counts)
        total = dist.mean * dist.count
        hp = m.HistogramDataPoint(
            start_time_unix_nano=start,
            time_unix_nano=end,
            count=dist.count,
            sum=total,
            explicit_bounds=bounds,
            bucket_counts=counts,
            attributes=attrs,
        )
        return m.Metric(
            name=source.name,
            unit=source.unit,
            histogram=m.Histogram(aggregation_temporality=delta, data_points=[hp]),
        )
    number = float(getattr(value, which)) if which in ("double_value", "int64_value") else math.nan
    if which == "bool_value":
        number = 1.0 if value.bool_value else 0.0
    dp = m.NumberDataPoint(start_time_unix_nano=start, time_unix_nano=end, as_double=number, attributes=attrs)
    if series.metric_kind in (2, 3):  # DELTA, CUMULATIVE
        # Cloud Monitoring's request_count is DELTA per sample period; a CUMULATIVE one would be
        # cumulative over its start, which ingestion resolves per stream the same way.
        temporality = delta if series.metric_kind == 2 else m.AGGREGATION_TEMPORALITY_CUMULATIVE
        return m.Metric(
            name=source.name,
            unit=source.unit,
            sum=m.Sum(aggregation_temporality=temporality, is_monotonic=True, data_points=[dp]),
        )
    return m.Metric(name=source.name, unit=source.unit, gauge=m.Gauge(data_points=[dp]))


def _nanos(at: Any) -> int:
    if hasattr(at, "timestamp"):
        return round(at.timestamp() * 1e6) * 1000
    return int(at.seconds) * 1_000_000_000 + int(at.nanos)


def minute_batch_id(project: str, minute: datetime) -> str:
    """One batch per project and minute, whatever Monitoring answers: runs overlap (a run may take
    90 s on a 1-minute schedule) and points land late, so two reads of a minute can differ, and
    with their content as the id both were stored and sums doubled. The first read of a series'
    minute is kept; a series the first read did not have is added."""
    return content_hash(f"collector\x00{project}\x00{minute.isoformat()}".encode())


def collect(now: datetime | None = None) -> CollectResult:
    from google.cloud import firestore, monitoring_v3
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

    from functions.ingestion.ingest import ingest_payload

    settings = get_ingestion_settings()
    project = settings.collector_project or get_settings().project
    run_services = settings.split(settings.collector_run_services)
    sql_instances = settings.split(settings.collector_sql_instances)
    filters = [(s, f) for s in SOURCES if (f := _filter(s, run_services, sql_instances))]
    now = now or utcnow()
    target = (now - DELAY).replace(second=0, microsecond=0)
    catch_up = timedelta(seconds=settings.collector_max_catch_up_seconds)
    state_ref = get_firestore().collection(STATE[0]).document(STATE[1])
    snapshot = state_ref.get()
    cursor: datetime = (snapshot.to_dict() or {}).get("cursor") if snapshot.exists else None  # type: ignore[assignment]
    if cursor is None or cursor < target - catch_up:
        cursor = max(cursor or target - timedelta(minutes=1), target - catch_up)
    if not filters or cursor >= target:
        return CollectResult(minutes=0, points=0, rejected=0, cursor=cursor, sources=len(filters))

    client = monitoring_client()
    # minute start -> [(sort key, OTLP metric)]
    by_minute: dict[datetime, list[tuple[tuple[str, str, int], Any]]] = {}
    interval = monitoring_v3.TimeInterval(start_time=cursor, end_time=target)
    for source, flt in filters:
        pages = client.list_time_series(
            request={
                "name": f"projects/{project}",
                "filter": flt,
                "interval": interval,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            },
            timeout=30.0,
        )
        for series in pages:
            labels = _labels(source, series)
            for point in series.points:
                end = point.interval.end_time
                end_dt = end if isinstance(end, datetime) else datetime.fromtimestamp(_nanos(end) / 1e9, UTC)
                if not cursor < end_dt <= target:
                    continue
                minute = (end_dt - timedelta(microseconds=1)).replace(second=0, microsecond=0)
                metric = _to_point(source, series, point, labels)
                key = (source.name, repr(sorted(labels.items())), _nanos(end))
                by_minute.setdefault(minute, []).append((key, metric))

    points = rejected = minutes = 0
    minute = cursor
    while minute < target:
        entries = sorted(by_minute.get(minute, []), key=lambda item: item[0])
        if entries:
            request = ExportMetricsServiceRequest(
                resource_metrics=[
                    m.ResourceMetrics(
                        scope_metrics=[
                            m.ScopeMetrics(scope={"name": "ion.collector"}, metrics=[e[1] for e in entries])
                        ]
                    )
                ]
            )
            result = ingest_payload(
                request.SerializeToString(deterministic=True),
                "application/x-protobuf",
                batch_id=minute_batch_id(project, minute),
            )
            points += result.batch.accepted
            rejected += result.rejected
        minute += timedelta(minutes=1)
        minutes += 1
        state_ref.set({"cursor": minute, "updated": firestore.SERVER_TIMESTAMP})
    log.info(
        "collector run",
        extra={"minutes": minutes, "points": points, "rejected": rejected, "cursor": str(minute)},
    )
    return CollectResult(
        minutes=minutes, points=points, rejected=rejected, cursor=minute, sources=len(filters)
    )
