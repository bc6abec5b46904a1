"""Settings of the health capability, read from the environment once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent / "health.yaml"


class HealthSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Weights, mappings, thresholds, actions and drift settings (validated at load).
    config_file: Path = Field(default=DEFAULT_CONFIG_FILE, validation_alias="ION_HEALTH_CONFIG_FILE")
    # Most events one POST /v1/customers/{id}/events may carry.
    max_events_per_request: int = Field(default=500, ge=1, le=500, validation_alias="ION_HEALTH_MAX_EVENTS")
    # Publish success actions as notices on the alerts topic (off: recorded and logged only).
    publish_actions: bool = Field(default=True, validation_alias="ION_HEALTH_PUBLISH_ACTIONS")


def deployment_problems(target: str) -> list[str]:
    """Settings and the health config that do not validate, and Redis: routing caches customer
    keys there, and a revocation must reach that cache at once."""
    from functions.health.config import load_config
    from shared.deployment import load_settings, unset

    settings, problems = load_settings(HealthSettings)
    if settings is not None:
        try:
            load_config(settings.config_file)
        except Exception as exc:  # noqa: BLE001 - reported as the reason not to start
            problems.append(f"ION_HEALTH_CONFIG_FILE {settings.config_file}: {exc}")
    return problems + [f"{p}: a revoked key would live on in routing's cache" for p in unset("REDIS_URL")]


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("health", deployment_problems(target))


@lru_cache(maxsize=1)
def get_health_settings() -> HealthSettings:
    return HealthSettings()
