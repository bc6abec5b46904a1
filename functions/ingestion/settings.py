"""Settings of the ingestion capability, read from the environment once per process."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Monitoring's ingestion delay (collector.DELAY) plus the minute being collected and a run's length.
COLLECTOR_DELAY_SECONDS = 5 * 60
# How far back a query may reach: the hour rollups' 90-day retention and a week (nothing is older).
QUERY_PAST_DAYS = 97


class IngestionSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Distinct label sets one metric may have (series seen in the last 90 days); new series past
    # it are refused naming the metric.
    max_series_per_metric: int = Field(
        default=2000, gt=0, validation_alias="ION_METRICS_MAX_SERIES_PER_METRIC"
    )
    # Distinct metric names one service (resource `service.name`; "" when absent) may send; names
    # not seen for 90 days give their place back. A new name past it is refused naming the service.
    max_metrics_per_service: int = Field(
        default=500, gt=0, le=2000, validation_alias="ION_METRICS_MAX_METRICS_PER_SERVICE"
    )
    # Attributes one data point may carry (each becomes a label); a point with more is refused.
    max_attributes_per_point: int = Field(
        default=16, ge=1, le=128, validation_alias="ION_METRICS_MAX_ATTRIBUTES_PER_POINT"
    )
    # Characters of one label value (attribute or resource); a point with a longer one is refused.
    max_label_value_length: int = Field(
        default=256, ge=1, le=4096, validation_alias="ION_METRICS_MAX_LABEL_VALUE_LENGTH"
    )
    # Stored size (Firestore's size rules) a rollup, stream state or registry document may reach;
    # a point that would push one past it is refused in `partialSuccess` instead of failing the
    # write (Firestore's own limit is 1 MiB = 1,048,576 bytes, minus room for the estimate).
    max_document_bytes: int = Field(
        default=900_000, ge=10_000, le=1_000_000, validation_alias="ION_METRICS_MAX_DOCUMENT_BYTES"
    )
    # `GET /v1/query`: the longest window (days; the hour rollups are kept 90) and the most series
    # one answer may hold. Times must lie within QUERY_PAST_DAYS before and a day after the clock.
    query_max_window_days: int = Field(
        default=92, ge=1, le=QUERY_PAST_DAYS, validation_alias="ION_QUERY_MAX_WINDOW_DAYS"
    )
    query_max_series: int = Field(default=1000, ge=1, le=100_000, validation_alias="ION_QUERY_MAX_SERIES")
    # Points (series x steps) one answer may hold, ~40 bytes of JSON each: ~4 MB, well within the
    # platform's 32 MiB answer (query_api.py: 1,000 series at a minute step over 72 h were ~200 MB).
    query_max_points: int = Field(
        default=100_000, ge=1000, le=1_000_000, validation_alias="ION_QUERY_MAX_POINTS"
    )
    # Rollup documents one query reads at most: a rollup holds up to 100 series (a bucket) of a
    # minute (per writer shard) or an hour, so a metric of 1,500 series read over 92 days of hours
    # is 33,000 documents, over 72 h of minutes up to 260,000 (4 shards): one request's reads.
    query_max_documents: int = Field(
        default=20_000, ge=100, le=1_000_000, validation_alias="ION_QUERY_MAX_DOCUMENTS"
    )
    # Series per bucket: a rollup document holds one bucket of a metric's series, so a request
    # writes one document per bucket and minute instead of one per series. A series' entry is
    # ~0.1 KB of summary and labels plus its sketch (~1.2-1.8 KB compressed for values spread
    # over four decades, ~4.3 KB for a lognormal over eleven): 100 series keep a document under
    # ~450 KB, well within Firestore's 1 MiB. Series are assigned to a bucket once, at
    # registration; changing this affects only series registered afterwards.
    bucket_series: int = Field(default=100, ge=1, le=200, validation_alias="ION_METRICS_BUCKET_SERIES")
    # Writer shards per bucket and minute: concurrent batches touching one bucket spread over this
    # many documents (each kept under ~1 write/s); the query merges them.
    write_shards: int = Field(default=4, ge=1, le=64, validation_alias="ION_METRICS_WRITE_SHARDS")
    # The lateness allowance: points older than this are refused. It is also what lets the
    # downsampler fold an hour from its minute rollups exactly once: an hour is folded only after
    # it closed more than this (plus the fold grace) ago, so no point can still land in it. It must
    # cover the collector's catch-up (checked below) and should cover Pub/Sub redeliveries
    # (ION_MAX_EVENT_AGE_SECONDS, 1 h); it stays well under the minute rollups' 72 h retention so
    # that the minutes still exist when their hour is folded.
    max_age_seconds: int = Field(
        default=2 * 3600, gt=0, le=24 * 3600, validation_alias="ION_METRICS_MAX_AGE_SECONDS"
    )
    # Points further ahead than this (clock skew) are refused.
    max_future_seconds: int = Field(default=600, ge=0, validation_alias="ION_METRICS_MAX_FUTURE_SECONDS")
    # Margin the downsampler waits beyond the lateness allowance before folding an hour. An ingest
    # checks a point's age when the request arrives and commits up to a function timeout (120 s)
    # later; the grace covers that and clock skew between instances.
    fold_grace_seconds: int = Field(
        default=300, ge=0, le=3600, validation_alias="ION_METRICS_FOLD_GRACE_SECONDS"
    )
    # Series one downsampler run folds at most, counted by whole buckets (each bucket: one small
    # query, its minutes read, one write per closed hour); the next run resumes after it.
    downsample_max_series: int = Field(
        default=2000, ge=1, le=100_000, validation_alias="ION_METRICS_DOWNSAMPLE_MAX_SERIES"
    )
    # How long the last value of a cumulative stream is kept without news from that stream.
    stream_memory_days: int = Field(default=8, gt=0, validation_alias="ION_METRICS_STREAM_MEMORY_DAYS")
    # Firestore writes per transaction (a batch is applied in chunks, see the writer).
    max_writes_per_transaction: int = Field(
        default=400, ge=10, le=500, validation_alias="ION_METRICS_TXN_WRITES"
    )
    # Topic told about every stored batch ("" turns the notification off).
    updates_topic: str = Field(default="metric-updates", validation_alias="ION_METRICS_UPDATES_TOPIC")

    # Collector (Cloud Monitoring -> store).
    collector_project: str | None = Field(default=None, validation_alias="ION_COLLECTOR_PROJECT")
    collector_run_services: str = Field(default="", validation_alias="ION_COLLECTOR_RUN_SERVICES")
    collector_sql_instances: str = Field(default="", validation_alias="ION_COLLECTOR_SQL_INSTANCES")
    # Longest stretch of minutes one run catches up on after a pause (older minutes are skipped).
    collector_max_catch_up_seconds: int = Field(
        default=1800, ge=60, le=86_400, validation_alias="ION_COLLECTOR_MAX_CATCH_UP_SECONDS"
    )
    monitoring_endpoint: str | None = Field(default=None, validation_alias="ION_MONITORING_ENDPOINT")

    @model_validator(mode="after")
    def _lateness_covers_the_collector(self) -> IngestionSettings:
        # The collector writes minutes up to its catch-up plus Monitoring's 3-minute delay (and the
        # minute itself) in the past; a lateness allowance shorter than that would refuse them.
        oldest = self.collector_max_catch_up_seconds + COLLECTOR_DELAY_SECONDS
        if oldest > self.max_age_seconds:
            raise ValueError(
                f"ION_METRICS_MAX_AGE_SECONDS ({self.max_age_seconds}) must be at least "
                f"ION_COLLECTOR_MAX_CATCH_UP_SECONDS + {COLLECTOR_DELAY_SECONDS} ({oldest}): "
                "the collector's points would be refused as late"
            )
        return self

    @property
    def fold_delay_seconds(self) -> int:
        """How long after an hour closes the downsampler may fold it."""
        return self.max_age_seconds + self.fold_grace_seconds

    @staticmethod
    def split(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]


def deployment_problems(target: str) -> list[str]:
    """What a deployed ingestion function lacks: settings that do not validate and, for ``ingest``
    (which runs the scheduled collector), the services whose metrics it copies (without them the
    collector would succeed every minute having read nothing)."""
    from shared.deployment import load_settings, unset

    _, problems = load_settings(IngestionSettings)
    if target == "ingest":
        problems += [
            f"{p}: the collector would copy no Cloud Run metric" for p in unset("ION_COLLECTOR_RUN_SERVICES")
        ]
    return problems


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("ingestion", deployment_problems(target))


@lru_cache(maxsize=1)
def get_ingestion_settings() -> IngestionSettings:
    return IngestionSettings()
