"""Platform-wide settings, read from the environment once per process.

Each capability keeps its own settings model next to its code; this one holds what every
function shares. Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    project: str = Field(
        default="ion-ops-local",
        validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"),
        min_length=1,
    )
    region: str = Field(default="us-central1", validation_alias="FUNCTION_REGION")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # PEM of the CA that signed the Redis server's TLS certificate (a rediss:// REDIS_URL);
    # deployed, Memorystore's per-instance server CA.
    redis_ca_cert: str | None = Field(default=None, validation_alias="REDIS_CA_CERT")
    # Largest request body any HTTP function reads; larger bodies get 413 before parsing.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, validation_alias="ION_MAX_BODY_BYTES")
    # Pub/Sub events older than this are dropped instead of processed (stale retries).
    max_event_age_seconds: int = Field(default=3600, gt=0, validation_alias="ION_MAX_EVENT_AGE_SECONDS")
    log_level: str = Field(default="INFO", validation_alias="ION_LOG_LEVEL")
    # The Firestore database of the public route's own collections (feedback): route may write
    # there and nowhere else (terraform: its grant is conditioned on this database).
    route_database: str = Field(
        default="route", pattern=r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$", validation_alias="ION_ROUTE_DATABASE"
    )
    # Bound on a blocking publish; Cloud Functions throttle CPU after the response, so we wait.
    publish_timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="ION_PUBLISH_TIMEOUT_SECONDS")
    # /health answers from a probe of the dependencies at most this old.
    health_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, validation_alias="ION_HEALTH_CACHE_SECONDS"
    )
    # Probe rounds /health may start per minute on one instance (beyond: the last report).
    health_max_probes_per_minute: int = Field(
        default=30, ge=1, le=6000, validation_alias="ION_HEALTH_MAX_PROBES_PER_MINUTE"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
