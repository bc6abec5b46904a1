"""The health API's contract: the path variables, query strings and answers of the routes
``main.py`` declares (each model is a component of ``/openapi.json``, named after its class); the
bodies are the customer models of ``models.py``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.health.models import Customer, CustomerRef, KeyView
from shared.clock import CalendarDate
from shared.ids import DocumentId

CATEGORIES = ("healthy", "at_risk", "churn_risk", "usage_unknown")
Category = Literal["healthy", "at_risk", "churn_risk", "usage_unknown"]
# `deactivated` is the same as the stored `inactive` (the word of the deactivate route).
StatusFilter = Literal["active", "inactive", "deactivated", "all"]


class CustomerPath(BaseModel):
    customer_id: CustomerRef


class KeyPath(BaseModel):
    customer_id: CustomerRef
    key_id: DocumentId(max_length=64, description="a key id, as issued (12 hex digits)")  # type: ignore[valid-type]


class PageQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000, description="customers per page, 1 to 1000")
    category: Category | None = Field(default=None, description="only customers of this health category")
    after: CustomerRef | None = Field(  # type: ignore[valid-type]
        default=None, description="the `next` of the previous page: customers after this id"
    )
    status: StatusFilter = Field(
        default="all",
        description="active, inactive (or deactivated, the same) or all (the registry lists all by default)",
    )


class ScoredQuery(PageQuery):
    """The health list: filterable and sortable for a success manager's book of business."""

    plan: str | None = Field(default=None, max_length=50, description="only customers on this plan")
    segment: str | None = Field(default=None, max_length=50, description="only customers of this segment")
    csm: str | None = Field(
        default=None, max_length=254, description="only customers of this success manager (email or name)"
    )
    min_score: float | None = Field(default=None, ge=0, le=100, description="score at least this")
    max_score: float | None = Field(default=None, ge=0, le=100, description="score at most this")
    sort: Literal["id", "score", "-score"] = Field(
        default="id", description="id, score (lowest first) or -score (highest first); ties by id"
    )
    status: StatusFilter = Field(
        default="active",
        description="active (default: what success works on), inactive (or deactivated, the same) or all",
    )

    @model_validator(mode="after")
    def _a_range_a_score_can_be_in(self) -> ScoredQuery:
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(
                f"min_score {self.min_score:g} is above max_score {self.max_score:g}: "
                "no score is in that range"
            )
        return self


class DaysQuery(BaseModel):
    days: int = Field(default=30, ge=1, le=400, description="days of history, 1 to 400")


class WeeksQuery(BaseModel):
    weeks: int = Field(default=4, ge=1, le=52, description="weeks back, 1 to 52")


class RunQuery(BaseModel):
    as_of: CalendarDate | None = Field(
        default=None, description="score as of the start of this day (default today, UTC), YYYY-MM-DD"
    )


class CustomerPage(BaseModel):
    customers: list[Customer]
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class ScoredCustomer(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    plan: str | None
    segment: str | None
    status: str = Field(default="active", description="active, or inactive (deactivated: not scored)")
    score: float | None
    category: str | None
    as_of: str | None


class ScoredPage(BaseModel):
    customers: list[ScoredCustomer]
    next: str | None = Field(
        description="pass as `after` for the next page; null on the last. A page reads a bounded "
        "number of customers, so a filtered one may hold fewer than `limit` with more to come"
    )


class CustomerHealth(ScoredCustomer):
    components: dict[str, Any] = Field(description="per signal: score, weight, inputs, headline")
    missing: list[Any]
    previous: Any
    movers: list[Any]
    actions: dict[str, Any] = Field(description="per action: its episode state")
    history: list[dict[str, Any]] = Field(description="daily as_of, score, category, actions_fired")


class PersonaHealth(BaseModel):
    expected_mix: dict[str, Any]
    weeks: list[dict[str, Any]]
    drift_state: dict[str, Any]


class KeyPageQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000, description="keys per page, 1 to 1000")
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=64, description="the `next` of the previous page: keys issued after this key"
        )
        | None
    ) = None


class KeyList(BaseModel):
    keys: list[KeyView]
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null on the last (a full page may be followed "
        "by an empty one)",
    )


# OpenAPI links: where a created customer and an issued key are read back or acted on.
CUSTOMER_LINKS = {
    "get_customer": {"customer_id": "$response.body#/id"},
    "list_keys": {"customer_id": "$response.body#/id"},
    "issue_key": {"customer_id": "$response.body#/id"},
}
KEY_LINKS = {
    201: {"revoke_key": {"customer_id": "$response.body#/customer_id", "key_id": "$response.body#/key_id"}}
}
# A customer's keys (revoked ones are kept: thousands after years of rotation), a page at a time.
LIST_KEYS: dict[str, Any] = {
    "methods": ["GET"],
    "params": CustomerPath,
    "query": KeyPageQuery,
    "response": KeyList,
}


class EventOutcome(BaseModel):
    event_id: str
    outcome: Literal["created", "unchanged", "conflict"]


class ImportResult(BaseModel):
    customer_id: str
    created: int
    unchanged: int
    conflict: int
    events: list[EventOutcome]
    detail: str | None = None


class StatusChange(BaseModel):
    customer: Customer
    changed: bool = Field(description="false: it already had this status (nothing done)")
    keys_revoked: list[str] = Field(default=[], description="key ids revoked by this deactivation")


class Erasure(BaseModel):
    customer_id: str
    existed: bool = Field(description="false: nothing of the customer's own was left (a repeat)")
    removed: dict[str, int] = Field(
        description="per collection, documents deleted or entries removed now; `dead_letters`: letters "
        "about the customer redacted (kept for on-call without the message), `dead_letter_parts`: "
        "their data parts deleted"
    )
