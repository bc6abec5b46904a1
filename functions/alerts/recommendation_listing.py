"""GET /v1/recommendations a page at a time: its query and its answer (the page is read by
``recommendation_store.load_page``). A run holds a recommendation per rule and series, ~1 KB
each: 1,500 series answered at once were ~1.5 MB read and held per request."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.ids import DocumentId


class Recommendations(BaseModel):
    """What the tuning job (``POST /v1/tune``) stored and answers: every series of the run."""

    generated_at: str
    recommendations: list[dict[str, Any]]


class RecommendationsQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=500, description="at most this many, by rule and labels")
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=64, description="the `next` of the page before: the series after this one"
        )
        | None
    ) = None


class RecommendationList(BaseModel):
    generated_at: str | None
    recommendations: list[dict[str, Any]]
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null on the last (a full page may be followed "
        "by an empty one)",
    )
