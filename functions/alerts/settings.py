"""Settings of the alerts capability, read from the environment once per process."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    topic: str = Field(default="alerts", validation_alias="ION_ALERTS_TOPIC")
    # Transitions stored but not yet acknowledged by Pub/Sub are published again after this.
    republish_after_seconds: int = Field(
        default=60, gt=0, validation_alias="ION_ALERTS_REPUBLISH_AFTER_SECONDS"
    )
    tuning_days: float = Field(default=7.0, gt=0, le=90, validation_alias="ION_ALERTS_TUNING_DAYS")
    # The Cloud Scheduler API for the jobs' dead man's switch: its default endpoint when deployed;
    # a stand-in's URL locally (`make run` starts one); unset locally: heartbeats alone.
    scheduler_api_url: str | None = Field(default=None, validation_alias="ION_SCHEDULER_API_URL")
    scheduler_location: str | None = Field(default=None, validation_alias="ION_SCHEDULER_LOCATION")
    deployed: bool = Field(default=False, validation_alias="K_SERVICE")

    @field_validator("deployed", mode="before")
    @classmethod
    def _any_service_name(cls, value: object) -> bool:
        return bool(value)


def deployment_problems(target: str) -> list[str]:
    """What a deployed alerts function cannot start with: settings that do not validate, and a
    rules file that does not load (every rule, field and reason named)."""
    from functions.alerts.rules import RulesError, active_rules
    from shared.deployment import load_settings

    _, problems = load_settings(AlertSettings)
    try:
        active_rules()
    except RulesError as exc:
        problems += [f"rules: {error['rule']} {error['field']}: {error['message']}" for error in exc.errors]
    return problems


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("alerts", deployment_problems(target))


@lru_cache(maxsize=1)
def settings() -> AlertSettings:
    return AlertSettings()
