"""Settings of the ingestion capability, read from the environment once per process."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestionSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Distinct label sets one metric may have (series seen in the last 90 days); new series past
    # it are refused naming the metric.
    max_series_per_metric: int = Field(
        default=2000, gt=0, validation_alias="ION_METRICS_MAX_SERIES_PER_METRIC"
    )
    # Writer shards per series and bucket: concurrent batches of one hot series spread over this
    # many documents (each kept under ~1 write/s); the query merges them.
    write_shards: int = Field(default=4, ge=1, le=64, validation_alias="ION_METRICS_WRITE_SHARDS")
    # Points older than this are refused (minute rollups would already be expired).
    max_age_seconds: int = Field(default=72 * 3600, gt=0, validation_alias="ION_METRICS_MAX_AGE_SECONDS")
    # Points further ahead than this (clock skew) are refused.
    max_future_seconds: int = Field(default=600, ge=0, validation_alias="ION_METRICS_MAX_FUTURE_SECONDS")
    # How long an applied batch is remembered, so a retry of the same payload is not counted twice.
    batch_memory_days: int = Field(default=3, gt=0, validation_alias="ION_METRICS_BATCH_MEMORY_DAYS")
    # How long the last value of a cumulative stream is kept without news from that stream.
    stream_memory_days: int = Field(default=8, gt=0, validation_alias="ION_METRICS_STREAM_MEMORY_DAYS")
    # Firestore writes per transaction (a batch is applied in chunks of whole series).
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

    @staticmethod
    def split(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache(maxsize=1)
def get_ingestion_settings() -> IngestionSettings:
    return IngestionSettings()
