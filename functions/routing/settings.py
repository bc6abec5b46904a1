"""Settings of the routing function, from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.routing.config import DEFAULT_WEIGHTS_FILE


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Comma-separated API keys; empty means the API is open (the local default).
    api_keys: str = Field(default="", validation_alias="ION_API_KEYS")
    rate_limit_per_second: float = Field(default=50.0, gt=0, validation_alias="ION_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = Field(default=100, ge=1, validation_alias="ION_RATE_LIMIT_BURST")
    weights_file: Path = Field(default=DEFAULT_WEIGHTS_FILE, validation_alias="ION_ROUTING_WEIGHTS_FILE")
    experiment: bool = Field(default=False, validation_alias="ION_ROUTING_EXPERIMENT")
    # How often an instance re-reads the arms' feedback totals from Firestore (on a request).
    experiment_refresh_seconds: float = Field(
        default=60.0, gt=0, validation_alias="ION_EXPERIMENT_REFRESH_SECONDS"
    )
    # Key for the MAC in request ids (so feedback names a request this service answered).
    request_id_secret: str = Field(default="", validation_alias="ION_REQUEST_ID_SECRET")
    l1_max_items: int = Field(default=1500, ge=1, validation_alias="ION_CACHE_L1_MAX_ITEMS")
    l1_ttl_seconds: float = Field(default=45.0, gt=0, validation_alias="ION_CACHE_L1_TTL_SECONDS")
    l2_ttl_seconds: int = Field(default=600, ge=1, validation_alias="ION_CACHE_L2_TTL_SECONDS")
    # After a Redis error, L2 is skipped for this long instead of timing out on every request.
    redis_retry_seconds: float = Field(default=5.0, ge=0, validation_alias="ION_REDIS_RETRY_SECONDS")
    warm_items: int = Field(default=500, ge=0, validation_alias="ION_CACHE_WARM_ITEMS")
    context_messages: int = Field(default=10, ge=0, validation_alias="ION_PROMPT_CONTEXT_MESSAGES")

    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]


@lru_cache(maxsize=1)
def get_routing_settings() -> RoutingSettings:
    return RoutingSettings()
