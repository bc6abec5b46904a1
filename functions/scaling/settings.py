"""Settings of the scaling capability, read from the environment once per process."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The seeds' rollback triggers, as the default alert rules name them (read from alert states):
# error rate > 1% (critical), P95 > 100 ms (high), DB replication lag > 500 ms, cache hit drop.
DEFAULT_GUARD_RULES = "error-rate-critical,latency-p95-high,db-replication-lag-high,cache-hit-rate-medium"


class ScalingSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Record decisions without applying them. Locally the default; a deployed function must say.
    dry_run: bool | None = Field(default=None, validation_alias="ION_SCALING_DRY_RUN")
    # Cloud Run Admin API v2 endpoint: empty for Google's own, or a stand-in like http://127.0.0.1:8091.
    cloudrun_endpoint: str = Field(default="", validation_alias="ION_SCALING_CLOUDRUN_ENDPOINT")
    # Service-level scaling (no new revision) or the revision template's (a new revision).
    apply_level: Literal["service", "template"] = Field(
        default="service", validation_alias="ION_SCALING_APPLY_LEVEL"
    )
    apply_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, validation_alias="ION_SCALING_APPLY_TIMEOUT"
    )
    # Requests per minute one instance serves at the CPU target until enough history teaches it.
    # Seed: 9,270 r/s on 28 instances = 331 r/s = 19,864 requests/min per instance.
    default_capacity_rpm: float = Field(default=19_864.0, gt=0, validation_alias="ION_SCALING_CAPACITY_RPM")
    headroom: float = Field(default=0.2, ge=0.2, le=0.3, validation_alias="ION_SCALING_HEADROOM")
    stabilisation_minutes: int = Field(
        default=30, ge=0, le=240, validation_alias="ION_SCALING_STABILISATION_MINUTES"
    )
    tolerance: float = Field(default=0.1, ge=0, le=0.5, validation_alias="ION_SCALING_TOLERANCE")
    guard_rules: str = Field(default=DEFAULT_GUARD_RULES, validation_alias="ION_SCALING_GUARD_RULES")
    # Metric names: routing's own request metric and the collector's Cloud Run metrics.
    route_service: str = Field(default="routing", validation_alias="ION_SCALING_ROUTE_SERVICE_LABEL")
    # Price of one always-on instance-hour for the monthly cost estimate (the cost capability's
    # example configuration: Cloud Run $1,200/month over the 28 instances seen in the seeds).
    instance_hour_usd: float = Field(default=0.0587, ge=0, validation_alias="ION_SCALING_INSTANCE_HOUR_USD")
    decisions_ttl_days: int = Field(
        default=30, ge=1, le=400, validation_alias="ION_SCALING_DECISIONS_TTL_DAYS"
    )
    topic: str = Field(default="alerts", validation_alias="ION_SCALING_TOPIC")

    @property
    def guard_rule_names(self) -> list[str]:
        return [name.strip() for name in self.guard_rules.split(",") if name.strip()]

    @property
    def effective_dry_run(self) -> bool:
        return True if self.dry_run is None else self.dry_run


class SettingsError(RuntimeError):
    pass


@lru_cache(maxsize=1)
def get_scaling_settings() -> ScalingSettings:
    settings = ScalingSettings()
    if os.environ.get("K_SERVICE") and settings.dry_run is None:
        raise SettingsError(
            "ION_SCALING_DRY_RUN must be set on a deployed function (true records decisions only, "
            "false applies them through the Cloud Run Admin API)"
        )
    return settings
