"""The health configuration (YAML), validated at load: weights, mappings, actions, personas."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.health.settings import get_health_settings

SIGNALS = ("engagement", "adoption", "api_health", "feedback", "tickets", "payment")
Signal = Literal["engagement", "adoption", "api_health", "feedback", "tickets", "payment"]
FEATURES = ("route_key", "route_message", "recommend", "bulk", "feedback")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parts_sum_to_one(parts: dict[str, float], what: str) -> None:
    if any(v < 0 for v in parts.values()) or not math.isclose(sum(parts.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"{what} must be non-negative and add up to 1, got {parts}")


class Categories(_Strict):
    healthy: float = Field(default=70, gt=0, le=100)
    at_risk: float = Field(default=40, gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Categories:
        if self.at_risk >= self.healthy:
            raise ValueError("categories.at_risk must be below categories.healthy")
        return self


class EngagementParts(_Strict):
    activity: float = 0.5
    volume: float = 0.25
    trend: float = 0.25


class Engagement(_Strict):
    full_active_days: float = Field(default=20, gt=0, le=28)
    full_requests: float = Field(default=2000, gt=0)
    trend_zero_ratio: float = Field(default=0.25, ge=0)
    trend_full_ratio: float = Field(default=0.9, gt=0)
    parts: EngagementParts = EngagementParts()

    @model_validator(mode="after")
    def _check(self) -> Engagement:
        if self.trend_zero_ratio >= self.trend_full_ratio:
            raise ValueError("engagement.trend_zero_ratio must be below trend_full_ratio")
        _parts_sum_to_one(self.parts.model_dump(), "engagement.parts")
        return self


class Adoption(_Strict):
    core_features: list[Literal["route_key", "route_message", "recommend", "bulk", "feedback"]] = Field(
        default=list(FEATURES), min_length=1
    )


class ApiHealth(_Strict):
    zero_at_bad_share: float = Field(default=0.2, gt=0, le=1)


class FeedbackParts(_Strict):
    helpful: float = 0.5
    rating: float = 0.25
    nps: float = 0.25


class FeedbackCfg(_Strict):
    parts: FeedbackParts = FeedbackParts()
    nps_lookback_days: int = Field(default=180, ge=1, le=400)

    @model_validator(mode="after")
    def _check(self) -> FeedbackCfg:
        _parts_sum_to_one(self.parts.model_dump(), "feedback.parts")
        return self


class PriorityLoad(_Strict):
    low: float = Field(default=0.5, ge=0)
    normal: float = Field(default=1.0, ge=0)
    high: float = Field(default=2.0, ge=0)
    urgent: float = Field(default=4.0, ge=0)


class Tickets(_Strict):
    lookback_days: int = Field(default=90, ge=1, le=400)
    priority_load: PriorityLoad = PriorityLoad()
    new_ticket_load: float = Field(default=0.25, ge=0)
    half_score_load: float = Field(default=3.0, gt=0)


class PaymentPenalty(_Strict):
    failed: float = Field(default=40, ge=0, le=100)
    overdue: float = Field(default=25, ge=0, le=100)
    paid_late: float = Field(default=10, ge=0, le=100)


class Payment(_Strict):
    lookback_days: int = Field(default=180, ge=1, le=400)
    penalty: PaymentPenalty = PaymentPenalty()


class Signals(_Strict):
    window_days: int = Field(default=28, ge=7, le=45)
    engagement: Engagement = Engagement()
    adoption: Adoption = Adoption()
    api_health: ApiHealth = ApiHealth()
    feedback: FeedbackCfg = FeedbackCfg()
    tickets: Tickets = Tickets()
    payment: Payment = Payment()


class Actions(_Strict):
    cooldown_days: float = Field(default=30, ge=0)
    onboarding_days: int = Field(default=7, ge=1)
    low_engagement_below: float = Field(default=40, gt=0, le=100)
    adoption_after_days: int = Field(default=14, ge=0)
    adoption_below: float = Field(default=0.6, gt=0, le=1)


class Personas(_Strict):
    expected_mix: dict[str, float] = {"Lua": 0.23, "Elro": 0.27, "Riri": 0.25, "Nana": 0.25}
    baseline_weeks: int = Field(default=4, ge=1, le=12)
    significance: float = Field(default=0.01, gt=0, lt=1)
    min_js_distance: float = Field(default=0.03, ge=0, le=1)
    min_requests: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _mix(self) -> Personas:
        if len(self.expected_mix) < 2 or any(v <= 0 for v in self.expected_mix.values()):
            raise ValueError("personas.expected_mix needs at least two personas with positive shares")
        if not math.isclose(sum(self.expected_mix.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"personas.expected_mix must add up to 1, got {sum(self.expected_mix.values())}")
        return self


class HealthConfig(_Strict):
    weights: dict[Signal, float]
    categories: Categories = Categories()
    signals: Signals = Signals()
    actions: Actions = Actions()
    personas: Personas = Personas()

    @model_validator(mode="after")
    def _weights(self) -> HealthConfig:
        missing = [s for s in SIGNALS if s not in self.weights]
        if missing:
            raise ValueError(f"weights must name every signal; missing {', '.join(missing)}")
        _parts_sum_to_one(dict(self.weights), "weights")
        return self


def load_config(path: Path) -> HealthConfig:
    return HealthConfig.model_validate(yaml.safe_load(path.read_text()))


@lru_cache(maxsize=4)
def config_from(path: Path) -> HealthConfig:
    return load_config(path)


def configured() -> HealthConfig:
    """The config ION_HEALTH_CONFIG_FILE names, loaded once per path."""
    return config_from(get_health_settings().config_file)
