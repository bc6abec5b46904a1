"""Settings of the routing function (environment) and its versioned weight configuration (YAML)."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS_FILE = HERE / "weights.yaml"


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


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tone: float = Field(ge=0, le=1)
    pace: float = Field(ge=0, le=1)
    intent: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        if sum(self.exact()) != 1:
            raise ValueError(f"weights must add up to 1, got {self.tone} + {self.pace} + {self.intent}")
        return self

    def exact(self) -> tuple[Fraction, Fraction, Fraction]:
        # Decimal text → exact fractions, so ties are decided exactly (0.5*0.8 + 0.3*1.0 == 0.7).
        return Fraction(str(self.tone)), Fraction(str(self.pace)), Fraction(str(self.intent))


class WeightSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    weights: Weights


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    arms: list[str] = Field(min_length=2, max_length=250)

    @field_validator("arms")
    @classmethod
    def _unique(cls, arms: list[str]) -> list[str]:
        if len(set(arms)) != len(arms):
            raise ValueError("arms must be unique")
        return arms


class WeightConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, lt=65536)
    default: str
    weight_sets: dict[str, WeightSet] = Field(min_length=1)
    experiment: Experiment | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> WeightConfig:
        if self.default not in self.weight_sets:
            raise ValueError(f"default weight set {self.default!r} is not defined")
        for arm in self.experiment.arms if self.experiment else []:
            if arm not in self.weight_sets:
                raise ValueError(f"experiment arm {arm!r} is not a defined weight set")
        return self


def load_weight_config(path: Path) -> WeightConfig:
    return WeightConfig.model_validate(yaml.safe_load(path.read_text()))
