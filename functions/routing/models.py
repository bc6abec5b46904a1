"""HTTP bodies of the routing API (requests validated on the way in, answers documented)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGE_CHARS = 10_000
MAX_BULK_ITEMS = 1000


class ContextMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant", "mentor", "system"] = "user"
    content: str = Field(min_length=1, max_length=4000)


class RouteRequest(BaseModel):
    """``POST /v2/route`` and each item of ``POST /v2/bulk``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Shown in /openapi.json (and sent by the contract test, so a success is checked too).
        json_schema_extra={
            "examples": [
                {"resonance_key": "frustrated-burst-seek_advice"},
                {"message": "I keep failing the same exercise, what should I try next?", "user_id": "u-1"},
            ]
        },
    )

    resonance_key: str | None = Field(default=None, min_length=1, max_length=100)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    context: list[ContextMessage] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _key_or_message(self) -> RouteRequest:
        if self.resonance_key is None and not (self.message and self.message.strip()):
            raise ValueError("give resonance_key (tone-pace-intent), a non-empty message, or both")
        return self


class V1RouteRequest(RouteRequest):
    """The original body: ``user_input`` (or ``message``) and ``resonance_key``; unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE_CHARS,
        validation_alias=AliasChoices("message", "user_input", "content", "text"),
    )
    resonance_key: str | None = Field(
        default=None, min_length=1, max_length=100, validation_alias=AliasChoices("resonance_key", "key")
    )


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Items are validated one by one, so one bad item is one error, not a rejected batch.
    items: list[Any] = Field(min_length=1, max_length=MAX_BULK_ITEMS)
    include_prompts: bool = True


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        validation_alias=AliasChoices("scenario", "message"),
        pattern=r"\S",
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(min_length=1, max_length=100)
    helpful: bool
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    nps: int | None = Field(
        default=None, ge=0, le=10, description="optional NPS answer, counted per customer"
    )


class Prompt(BaseModel):
    system: str
    user: str


class PartInferenceOut(BaseModel):
    value: str
    evidence: list[str]


class WeightsOut(BaseModel):
    set: str
    version: int


class ExperimentOut(BaseModel):
    name: str
    arm: str


class RouteResponse(BaseModel):
    """The answer of ``POST /v2/route`` (and each successful bulk item)."""

    request_id: str
    resonance_key: str
    primary_persona: str
    secondary_persona: str
    confidence: float
    scores: dict[str, float]
    inferred: list[str]
    inference: dict[str, PartInferenceOut] | None
    reasoning: str
    prompt: Prompt | None
    weights: WeightsOut
    experiment: ExperimentOut | None


class FeedbackResponse(BaseModel):
    request_id: str
    outcome: Literal["created", "updated", "unchanged"]
    persona: str
    arm: str | None
    persona_satisfaction: dict[str, Any]
