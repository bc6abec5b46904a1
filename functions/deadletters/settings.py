"""Settings of the dead-letter store (environment, validated at start)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeadLetterSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Stored dead letters are kept this long (Firestore TTL on expire_at), redriven or not.
    keep_days: int = Field(default=30, ge=1, le=365, validation_alias="ION_DEAD_LETTERS_KEEP_DAYS")
    # Source topics whose dead letters page (critical); the others alert at `high`.
    critical_topics_csv: str = Field(
        default="alerts,alert-deliveries", validation_alias="ION_DEAD_LETTERS_CRITICAL_TOPICS"
    )
    # Base URL of this function's API, for the link in the alert (locally the capability's port).
    public_url: str | None = Field(default=None, validation_alias="ION_DEADLETTERS_URL")

    @property
    def critical_topics(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.critical_topics_csv.split(",") if t.strip())


def deployment_problems(target: str) -> list[str]:
    """Settings that do not validate, and the link base of the alert's link to the letter."""
    from shared.deployment import link_problems, load_settings

    _, problems = load_settings(DeadLetterSettings)
    return problems + link_problems("ION_DEADLETTERS_URL")


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("deadletters", deployment_problems(target))


@lru_cache(maxsize=1)
def get_dead_letter_settings() -> DeadLetterSettings:
    return DeadLetterSettings()
