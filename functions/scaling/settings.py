"""Settings of the scaling capability, read from the environment once per process."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Literal, NamedTuple

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The seeds' rollback triggers, as the default alert rules name them (read from alert states):
# error rate > 1% (critical), P95 > 100 ms (high), DB replication lag > 500 ms, cache hit drop.
DEFAULT_GUARD_RULES = "error-rate-critical,latency-p95-high,db-replication-lag-high,cache-hit-rate-medium"


_TARGET = re.compile(
    r"^projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/locations/(?P<region>[a-z]+-[a-z]+[0-9])"
    r"/services/(?P<service>[a-z]([-a-z0-9]{0,47}[a-z0-9])?)$"
)


# A decision every minute: the schedule's attempt deadline, and so settling + the run's budget + a
# margin to answer and log, is at most the minute (else a retry of a slot overlaps the run itself).
MINUTE_SECONDS = 60.0
ANSWER_MARGIN_SECONDS = 5.0


class ScalingTarget(NamedTuple):
    project: str
    region: str
    service: str


def parse_targets(value: str) -> list[ScalingTarget]:
    """``projects/P/locations/R/services/S`` entries, comma-separated; one per region."""
    targets = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        match = _TARGET.match(entry)
        if match is None:
            raise ValueError(
                f"{entry!r} is not a Cloud Run service name (projects/P/locations/REGION/services/S)"
            )
        targets.append(ScalingTarget(match["project"], match["region"], match["service"]))
    regions = [t.region for t in targets]
    if len(set(regions)) != len(regions):
        raise ValueError("one service per region: the rules are per region")
    return targets


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
        default=30.0, gt=0, le=600, validation_alias="ION_SCALING_APPLY_TIMEOUT"
    )
    # Decisions come every minute: a run waits until this long after its minute began, so the
    # minute before is in the metric store (routing ships its metrics every 10 s), then reads.
    settle_seconds: float = Field(default=15.0, ge=0, le=30, validation_alias="ION_SCALING_SETTLE_SECONDS")
    # The run's budget after settling: the schedule's 60 s attempt deadline (and the function's
    # timeout) less the settling and a margin to answer and log; each API call gets what is left.
    deadline_seconds: float = Field(
        default=40.0, gt=0, le=MINUTE_SECONDS, validation_alias="ION_SCALING_DEADLINE_SECONDS"
    )
    # Max instances leave room for a burst of this many times the forecast's upper band.
    max_factor: float = Field(default=3.0, ge=1.0, le=20.0, validation_alias="ION_SCALING_MAX_FACTOR")
    # Requests per minute one instance serves at the CPU target until enough history teaches it.
    # Seed: 9,270 r/s on 28 instances = 331 r/s = 19,864 requests/min per instance.
    default_capacity_rpm: float = Field(default=19_864.0, gt=0, validation_alias="ION_SCALING_CAPACITY_RPM")
    # Over the last minute's load (the seeds give 20-30% for capacity plans; 0.1 missed on held-out
    # data, see the README); the forecast's upper band has its own.
    headroom: float = Field(default=0.2, ge=0.2, le=0.3, validation_alias="ION_SCALING_HEADROOM")
    forecast_headroom: float = Field(
        default=0.0, ge=0.0, le=0.3, validation_alias="ION_SCALING_FORECAST_HEADROOM"
    )
    stabilisation_minutes: int = Field(
        default=15, ge=0, le=240, validation_alias="ION_SCALING_STABILISATION_MINUTES"
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
    # The services scaled, one per region of the rules (Terraform's scaling_targets); unset: each
    # region's `service` of the rules in this project (local runs).
    targets_csv: str = Field(default="", validation_alias="ION_SCALING_TARGETS")

    @field_validator("targets_csv")
    @classmethod
    def _targets(cls, value: str) -> str:
        parse_targets(value)
        return value

    @model_validator(mode="after")
    def _fits_the_minute(self) -> ScalingSettings:
        if self.settle_seconds + self.deadline_seconds + ANSWER_MARGIN_SECONDS > MINUTE_SECONDS:
            raise ValueError(
                f"ION_SCALING_SETTLE_SECONDS ({self.settle_seconds:g}) + ION_SCALING_DEADLINE_SECONDS "
                f"({self.deadline_seconds:g}) + {ANSWER_MARGIN_SECONDS:g} s to answer must fit the "
                f"{MINUTE_SECONDS:g} s a run has (the schedule's attempt deadline, every minute)"
            )
        return self

    @property
    def targets(self) -> list[ScalingTarget]:
        return parse_targets(self.targets_csv)

    @property
    def guard_rule_names(self) -> list[str]:
        return [name.strip() for name in self.guard_rules.split(",") if name.strip()]

    @property
    def effective_dry_run(self) -> bool:
        return True if self.dry_run is None else self.dry_run


def deployment_problems(target: str) -> list[str]:
    """What a deployed scaling function lacks, each naming its variable."""
    from functions.scaling.rules import RulesError, active_rules
    from shared.deployment import load_settings

    settings, problems = load_settings(ScalingSettings)
    if os.environ.get("ION_SCALING_DRY_RUN") is None:
        problems.append(
            "ION_SCALING_DRY_RUN is not set (true records decisions only, false applies them "
            "through the Cloud Run Admin API)"
        )
    if settings is None:
        return problems
    if not settings.targets:
        problems.append(
            "ION_SCALING_TARGETS is not set: no service to scale (projects/P/locations/R/services/S)"
        )
    try:
        regions = set(active_rules().regions)
    except RulesError as exc:
        return [*problems, f"scaling rules: {exc}"]
    problems += [
        f"ION_SCALING_TARGETS names {t.region}, which has no rules in the rules file"
        for t in settings.targets
        if t.region not in regions
    ]
    if len({t.project for t in settings.targets}) > 1:
        problems.append("ION_SCALING_TARGETS spans several projects; the targets must share one")
    return problems


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("scaling", deployment_problems(target))


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
