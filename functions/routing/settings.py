"""Settings of the routing function, from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.routing.config import DEFAULT_WEIGHTS_FILE


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Comma-separated API keys; empty means the API is open (the local default; refused when
    # deployed unless ION_ALLOW_OPEN_API=true says the open API is meant).
    api_keys: str = Field(default="", validation_alias="ION_API_KEYS")
    allow_open_api: bool = Field(default=False, validation_alias="ION_ALLOW_OPEN_API")
    rate_limit_per_second: float = Field(default=50.0, gt=0, validation_alias="ION_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = Field(default=100, ge=1, validation_alias="ION_RATE_LIMIT_BURST")
    # Tokens an instance takes from Redis per round trip (0: a tenth of a second of the rate, at
    # most a tenth of the burst; 1: no lease), and how long it may hold the ones it has not spent.
    rate_limit_lease_tokens: int = Field(default=0, ge=0, validation_alias="ION_RATE_LIMIT_LEASE_TOKENS")
    rate_limit_lease_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias="ION_RATE_LIMIT_LEASE_SECONDS"
    )
    # Requests refused for their API key (401) allowed per client address and per key id, refilled
    # over the window; past it they are answered 429 with Retry-After (auth_failures.py).
    auth_failure_limit: int = Field(default=20, ge=1, validation_alias="ION_AUTH_FAILURE_LIMIT")
    auth_failure_window_seconds: float = Field(
        default=60.0, gt=0, le=86_400, validation_alias="ION_AUTH_FAILURE_WINDOW_SECONDS"
    )
    # Which X-Forwarded-For entry is the client (Python indexing): -1, the one Google's front end
    # appends for a request to the function's URL; 0, the first (client-written when appended to).
    client_ip_hop: int = Field(default=-1, ge=-10, le=10, validation_alias="ION_CLIENT_IP_HOP")
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

    def deployment_problems(self) -> list[str]:
        """What a deployed routing function must not start with, naming each variable: an API
        left open by mistake, an operator key weak enough to guess, or a request id anyone could
        forge."""
        from shared.deployment import MIN_SECRET_CHARS, secret_weakness

        problems: list[str] = []
        entries = self.api_keys.split(",") if self.api_keys else []
        if any(not entry.strip() for entry in entries):
            problems.append(
                "ION_API_KEYS has a blank entry (an empty key between, before or after commas); "
                "list only non-empty keys"
            )
        elif not entries and not self.allow_open_api:
            problems.append(
                "ION_API_KEYS is empty, which leaves the API open; set the keys, or "
                "ION_ALLOW_OPEN_API=true if an open API is meant"
            )
        for index, entry in enumerate((e.strip() for e in entries if e.strip()), 1):
            weakness = secret_weakness(entry)
            if weakness:
                problems.append(
                    f"ION_API_KEYS key {index} is too weak: {weakness}; each operator key needs at least "
                    f"{MIN_SECRET_CHARS} random characters of at least two kinds (openssl rand -hex 24)"
                )
        if not self.request_id_secret.strip():
            problems.append("ION_REQUEST_ID_SECRET is empty; request ids (and feedback) would be forgeable")
        return problems


def deployment_problems(target: str) -> list[str]:
    """Settings that do not validate, then ``RoutingSettings.deployment_problems``, the customer
    keys' secret and migration window, and Redis: without it each instance would count the
    per-key rate limit (and the failure limit) alone."""
    from functions.routing.customer_keys import CustomerKeySettings
    from shared.deployment import load_settings, unset

    settings, problems = load_settings(RoutingSettings)
    if settings is not None:
        problems += settings.deployment_problems()
    keys, key_problems = load_settings(CustomerKeySettings)
    problems += key_problems if keys is None else keys.deployment_problems()
    return problems + [
        f"{p}: the per-key rate limit would be counted per instance" for p in unset("REDIS_URL")
    ]


def check_deployment(target: str) -> None:
    """Deployed (``K_SERVICE`` set), refuse to start on any of ``deployment_problems``."""
    from shared.deployment import refuse_to_start

    refuse_to_start("routing", deployment_problems(target))


@lru_cache(maxsize=1)
def get_routing_settings() -> RoutingSettings:
    return RoutingSettings()
