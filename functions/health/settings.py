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
    # The MAC key customer keys are signed with (Secret Manager `customer-key-secret`, which
    # routing verifies with); comma-separated to rotate, the first signs.
    customer_key_secret: str = Field(default="", validation_alias="ION_CUSTOMER_KEY_SECRET")
    # Where people open the health API (the load balancer's public base URL): each success action's
    # notice links the customer's page under it. Locally unset: notices carry no link.
    public_url: str | None = Field(default=None, validation_alias="ION_HEALTH_PUBLIC_URL")

    def signing_secret(self) -> bytes:
        from shared.customer_keys import signing_secrets
        from shared.settings import get_settings

        return signing_secrets(self.customer_key_secret, get_settings().project)[0]


def deployment_problems(target: str) -> list[str]:
    """Settings and the health config that do not validate, the customer keys' signing secret
    (unset, keys would be signed with a local default routing refuses; weak, guessable), and
    Redis: routing caches customer keys there, and a revocation must reach that cache at once."""
    from functions.health.config import load_config
    from shared.deployment import link_problems, load_settings, secret_weakness, unset

    settings, problems = load_settings(HealthSettings)
    if settings is not None:
        try:
            load_config(settings.config_file)
        except Exception as exc:  # noqa: BLE001 - reported as the reason not to start
            problems.append(f"ION_HEALTH_CONFIG_FILE {settings.config_file}: {exc}")
        secrets = [part.strip() for part in settings.customer_key_secret.split(",") if part.strip()]
        if not secrets:
            problems.append(
                "ION_CUSTOMER_KEY_SECRET is not set: customer keys would be signed with a local default "
                "that routing refuses (Secret Manager customer-key-secret, the same value as route)"
            )
        elif weakness := secret_weakness(secrets[0]):
            problems.append(
                f"ION_CUSTOMER_KEY_SECRET is too weak: {weakness}; use at least 32 random characters "
                "(openssl rand -base64 48)"
            )
    problems += link_problems("ION_HEALTH_PUBLIC_URL")
    return problems + [f"{p}: a revoked key would live on in routing's cache" for p in unset("REDIS_URL")]


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("health", deployment_problems(target))


@lru_cache(maxsize=1)
def get_health_settings() -> HealthSettings:
    return HealthSettings()
