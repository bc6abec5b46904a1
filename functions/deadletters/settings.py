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
    # Source topics whose letters are re-driven by themselves (POST /v1/recover, every minute)
    # instead of paging one by one; on-call gets one summary once they are all through.
    recover_topics_csv: str = Field(
        default="alerts,alert-deliveries", validation_alias="ION_DEAD_LETTERS_RECOVER_TOPICS"
    )
    # A message re-driven this many times that failed again pages on its own instead.
    recover_max_redrives: int = Field(
        default=5, ge=0, le=20, validation_alias="ION_DEAD_LETTERS_RECOVER_MAX_REDRIVES"
    )
    # Wait before re-driving a message whose re-drive failed again: this, doubled each time (60 s,
    # 2 min, 4 min...). A first letter goes at the next run: it got stored, so Firestore is up.
    recover_backoff_seconds: float = Field(
        default=60.0, ge=0, le=3600, validation_alias="ION_DEAD_LETTERS_RECOVER_BACKOFF_SECONDS"
    )
    # Letters re-driven per run at most, oldest first; the rest wait for the next run.
    recover_batch: int = Field(default=100, ge=1, le=1000, validation_alias="ION_DEAD_LETTERS_RECOVER_BATCH")
    # The summary goes out once nothing waits to be re-driven and nothing was for this long, so
    # one outage is one summary, not one per run.
    summary_quiet_seconds: float = Field(
        default=120.0, ge=0, le=3600, validation_alias="ION_DEAD_LETTERS_SUMMARY_QUIET_SECONDS"
    )

    @property
    def critical_topics(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.critical_topics_csv.split(",") if t.strip())

    @property
    def recover_topics(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.recover_topics_csv.split(",") if t.strip())


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
