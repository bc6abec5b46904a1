"""The scoring core: the six signals (``signals.py``) weighed into one score, a category, and what
moved it since the last run. Nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from functions.health.config import SIGNALS, HealthConfig
from functions.health.models import Event
from functions.health.signals import (
    Component,
    Usage,
    adoption,
    api_health,
    clamp,
    engagement,
    feedback,
    payment,
    tickets,
)


class Mover(BaseModel):
    component: str
    delta: float
    reason: str


class ScoreResult(BaseModel):
    id: str
    as_of: date
    score: float
    category: str
    components: dict[str, Component]
    missing: list[str]
    previous: dict[str, Any] | None = None
    movers: list[Mover] = []
    # Points of the customer's usage refused by ingestion in the windows: > 0 makes the category
    # usage_unknown (the score is then of the incomplete usage, shown but not acted upon).
    usage_refused: float = 0.0


USAGE_UNKNOWN = "usage_unknown"


# The score ---------------------------------------------------------------------------------------


def category_of(score: float, cfg: HealthConfig) -> str:
    if score >= cfg.categories.healthy:
        return "healthy"
    if score >= cfg.categories.at_risk:
        return "at_risk"
    return "churn_risk"


def combine(
    customer_id: str, as_of: date, found: Mapping[str, Component | None], cfg: HealthConfig
) -> ScoreResult:
    """Weighted mean over the signals with data (weights renormalised); the rest are missing.
    The score is rounded to one decimal and the category taken from the rounded score, so the
    shown number and its category always agree."""
    present = {name: c for name, c in found.items() if c is not None and cfg.weights[name] > 0}
    missing = [name for name in SIGNALS if name not in present]
    total = sum(cfg.weights[name] for name in present)
    if total <= 0:
        raise ValueError("no signal with data and a positive weight")  # engagement always has data
    components: dict[str, Component] = {}
    raw = 0.0
    for name in SIGNALS:
        component = present.get(name)
        if component is None:
            continue
        weight = cfg.weights[name] / total
        raw += weight * component.score
        components[name] = component.model_copy(
            update={"weight": round(weight, 4), "score": round(component.score, 1)}
        )
    score = round(clamp(raw), 1)
    return ScoreResult(
        id=customer_id,
        as_of=as_of,
        score=score,
        category=category_of(score, cfg),
        components=components,
        missing=missing,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def movers(current: ScoreResult, previous: Mapping[str, Any] | None, limit: int = 3) -> list[Mover]:
    """What moved the score most since ``previous`` (a stored result): each component's change of
    weighted contribution, largest first, worded as "engagement -22: active_days 19 -> 6"."""
    if not previous:
        return []
    before: dict[str, Any] = previous.get("components") or {}
    found: list[tuple[float, Mover]] = []
    for name in SIGNALS:
        now, then = current.components.get(name), before.get(name)
        if now is None and then is None:
            continue
        contribution_now = now.score * now.weight if now else 0.0
        contribution_then = float(then["score"]) * float(then["weight"]) if then else 0.0
        moved = contribution_now - contribution_then
        if abs(moved) < 0.05:
            continue
        if now is None:
            reason = f"{name}: no data now (was {then['score']:g})"
            delta = -float(then["score"])
        elif then is None:
            reason = f"{name}: data again ({now.score:g})"
            delta = now.score
        else:
            delta = round(now.score - float(then["score"]), 1)
            key = now.headline
            old = (then.get("inputs") or {}).get(key)
            reason = f"{name} {delta:+g}: {key} {_fmt(old)} -> {_fmt(now.inputs.get(key))}"
        found.append((abs(moved), Mover(component=name, delta=delta, reason=reason)))
    found.sort(key=lambda item: -item[0])
    return [mover for _, mover in found[:limit]]


def score_customer(
    customer_id: str,
    *,
    created_at: datetime,
    as_of: date,
    usage: Usage,
    events: list[Event],
    cfg: HealthConfig,
    previous: Mapping[str, Any] | None = None,
) -> ScoreResult:
    """Score one customer for the UTC day before ``as_of`` (usage and events before its start)."""
    from datetime import UTC, time

    cutoff = datetime.combine(as_of, time(0), tzinfo=UTC)
    age_days = max(0.0, (cutoff - created_at).total_seconds() / 86400)
    found: dict[str, Component | None] = {
        "engagement": engagement(usage, as_of, age_days, cfg),
        "adoption": adoption(usage, cfg),
        "api_health": api_health(usage, cfg),
        "feedback": feedback(usage, events, cutoff, cfg),
        "tickets": tickets(events, cutoff, cfg),
        "payment": payment(events, cutoff, cfg),
    }
    result = combine(customer_id, as_of, found, cfg)
    if usage.refused > 0:
        # Some of its usage could not be stored: scoring it as if that traffic never happened
        # would call an active customer idle and send it retention and training actions.
        result.category = USAGE_UNKNOWN
        result.usage_refused = usage.refused
    result.movers = movers(result, previous)
    if previous:
        result.previous = {k: previous.get(k) for k in ("score", "category", "as_of")}
    return result
