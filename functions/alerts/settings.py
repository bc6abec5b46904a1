"""Settings of the alerts capability, read from the environment once per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

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
    # The external dead man's switch each scheduled evaluation cycle pings (heartbeat.py):
    # required when deployed (evaluate_alerts), unset locally (no ping, said in /health).
    heartbeat_url: str | None = Field(default=None, validation_alias="ION_ALERTS_HEARTBEAT_URL")
    heartbeat_method: Literal["GET", "POST"] = Field(
        default="GET", validation_alias="ION_ALERTS_HEARTBEAT_METHOD"
    )
    heartbeat_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30, validation_alias="ION_ALERTS_HEARTBEAT_TIMEOUT_SECONDS"
    )

    @field_validator("deployed", mode="before")
    @classmethod
    def _any_service_name(cls, value: object) -> bool:
        return bool(value)


# The entry point whose cycles ping the external dead man's switch.
HEARTBEAT_TARGET = "evaluate_alerts"


def heartbeat_url_problem(url: str | None) -> str | None:
    """Why ``url`` cannot be the deployed heartbeat URL; None when it can: an https address
    outside ION (not loopback, not one of our own functions)."""
    from urllib.parse import urlsplit

    name = "ION_ALERTS_HEARTBEAT_URL"
    if not url or not url.strip():
        return (
            f"{name} is not set: nothing outside ION would notice the evaluation cycle stop "
            "(the external dead man's switch; Terraform variable watchdog.heartbeat_url)"
        )
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        # The HTTP client refuses such a URL at every ping: the switch would page at once.
        return f"{name} contains a space or control character: percent-encode it (%20)"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return f"{name} is not a URL"
    if parts.scheme != "https" or not host:
        return f"{name} must be an https:// URL (the ping crosses the internet)"
    if host in ("localhost", "0.0.0.0", "::1") or host.startswith("127."):
        return f"{name} points at a loopback address: the switch must be outside ION"
    if host.endswith((".run.app", ".cloudfunctions.net")):
        return f"{name} points at a Cloud Run or Cloud Functions URL: the switch must be outside ION"
    return None


def deployment_problems(target: str) -> list[str]:
    """What a deployed alerts function cannot start with: settings that do not validate, a rules
    file that does not load (every rule, field and reason named), and for ``evaluate_alerts`` an
    external heartbeat URL it can ping."""
    from functions.alerts.rules import RulesError, active_rules
    from shared.deployment import load_settings

    loaded, problems = load_settings(AlertSettings)
    if target == HEARTBEAT_TARGET and loaded is not None:
        problem = heartbeat_url_problem(loaded.heartbeat_url)
        if problem:
            problems.append(problem)
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
