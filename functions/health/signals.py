"""The six signals of the scoring core: pure functions from a customer's usage and imported
events, each 0-100 by a documented monotone mapping (``scoring.py`` weighs them into one score).

Nothing here does I/O. Mappings (README "Signals" has the table):

- engagement = weighted mean of activity ``100·min(1, active_days / full_active_days)``, volume
  ``100·min(1, log(1+requests) / log(1+full_requests))`` and trend (requests over the window vs
  the window before: 0 at or below ``trend_zero_ratio``, 100 at or above ``trend_full_ratio``,
  linear between). For customers younger than the window, days and requests are scaled up to
  the window from the days they have existed, and trend is left out until a whole earlier window
  exists. Zero requests is data (engagement 0), never missing.
- adoption = ``100 · (core features used in the window) / (core features)``.
- api_health = ``100 · max(0, 1 - bad_share / zero_at_bad_share)``, bad = errors and 429s;
  missing without requests.
- feedback = weighted mean of helpful ``100·(helpful+1)/(answers+2)`` (Laplace, so one answer is
  not 0 or 100), rating ``100·(mean-1)/4`` and NPS ``(NPS+100)/2`` over routed feedback and
  imported survey answers; missing without any answer.
- tickets = ``100 / (1 + load / half_score_load)``, load = Σ open tickets' priority loads +
  new_ticket_load · tickets opened in the window; missing without ticket events in the lookback.
- payment = ``max(0, 100 - Σ penalties)`` over each invoice's latest state (failed, overdue, paid
  late); missing without payment events in the lookback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.health.config import HealthConfig
from functions.health.models import Event, NpsEvent, PaymentEvent, TicketEvent

OUTCOMES = ("ok", "client_error", "rate_limited", "server_error")
BAD_OUTCOMES = ("client_error", "rate_limited", "server_error")


@dataclass
class Usage:
    """One customer's usage from routing's metrics: requests per UTC day (two windows), and over
    the last window requests by feature and outcome and feedback answers (``helpful``,
    ``not_helpful``, ``rating_1``..``rating_5``, ``nps_0``..``nps_10``)."""

    daily: dict[date, float] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, float] = field(default_factory=dict)
    feedback: dict[str, float] = field(default_factory=dict)
    # Points of this customer that ingestion refused in the windows (over a cap, a value outside
    # the catalogue, late...): the usage above is then incomplete, and the customer is scored
    # usage_unknown, never as idle.
    refused: float = 0.0

    def merge(self, other: Usage) -> None:
        """Add ``other`` (the same customer's usage from another store, over other days)."""
        for mine, theirs in (
            (self.daily, other.daily),
            (self.features, other.features),
            (self.outcomes, other.outcomes),
            (self.feedback, other.feedback),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value  # type: ignore[index]
        self.refused += other.refused


class Component(BaseModel):
    score: float
    weight: float = 0.0
    inputs: dict[str, Any] = {}
    headline: str = ""


def clamp(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return max(low, min(high, value))


def _weighted(parts: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    present = {k: v for k, v in parts.items() if v is not None and weights.get(k, 0) > 0}
    total = sum(weights[k] for k in present)
    if not present or total <= 0:
        return None
    return sum(weights[k] * v for k, v in present.items()) / total


def engagement(usage: Usage, as_of: date, age_days: float, cfg: HealthConfig) -> Component:
    window = cfg.signals.window_days
    e = cfg.signals.engagement
    current = [as_of - timedelta(days=i) for i in range(1, window + 1)]
    earlier = [as_of - timedelta(days=i) for i in range(window + 1, 2 * window + 1)]
    active_days = sum(1 for day in current if usage.daily.get(day, 0) > 0)
    requests = sum(usage.daily.get(day, 0) for day in current)
    before = sum(usage.daily.get(day, 0) for day in earlier)
    observed = max(1.0, min(float(window), age_days))
    scale = window / observed
    activity = 100 * min(1.0, active_days * scale / e.full_active_days)
    volume = 100 * min(1.0, math.log1p(requests * scale) / math.log1p(e.full_requests))
    trend = None
    ratio = None
    if age_days >= 2 * window and before > 0:
        ratio = requests / before
        span = e.trend_full_ratio - e.trend_zero_ratio
        trend = 100 * clamp((ratio - e.trend_zero_ratio) / span, 0.0, 1.0)
    score = _weighted({"activity": activity, "volume": volume, "trend": trend}, e.parts.model_dump())
    assert score is not None  # activity is always there
    return Component(
        score=score,
        inputs={
            "active_days": active_days,
            "requests": round(requests),
            "requests_before": round(before),
            "trend_ratio": round(ratio, 3) if ratio is not None else None,
            "observed_days": round(observed, 1),
        },
        headline="active_days",
    )


def adoption(usage: Usage, cfg: HealthConfig) -> Component:
    core = cfg.signals.adoption.core_features
    used = [f for f in core if usage.features.get(f, 0) > 0]
    return Component(
        score=100 * len(used) / len(core),
        inputs={"features_used": len(used), "used": used, "unused": [f for f in core if f not in used]},
        headline="features_used",
    )


def api_health(usage: Usage, cfg: HealthConfig) -> Component | None:
    total = sum(usage.outcomes.get(o, 0) for o in OUTCOMES)
    if total <= 0:
        return None
    errors = usage.outcomes.get("client_error", 0) + usage.outcomes.get("server_error", 0)
    limited = usage.outcomes.get("rate_limited", 0)
    bad = (errors + limited) / total
    return Component(
        score=100 * max(0.0, 1 - bad / cfg.signals.api_health.zero_at_bad_share),
        inputs={
            "requests": round(total),
            "error_share": round(errors / total, 4),
            "rate_limited_share": round(limited / total, 4),
            "bad_share": round(bad, 4),
        },
        headline="bad_share",
    )


def nps_value(counts: Mapping[int, float]) -> float | None:
    """Net Promoter Score (-100..100) of answers 0-10: % promoters (9-10) - % detractors (0-6)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    promoters = sum(v for k, v in counts.items() if k >= 9)
    detractors = sum(v for k, v in counts.items() if k <= 6)
    return 100 * (promoters - detractors) / total


def feedback(usage: Usage, events: Iterable[Event], as_of: datetime, cfg: HealthConfig) -> Component | None:
    f = usage.feedback
    helpful, not_helpful = f.get("helpful", 0), f.get("not_helpful", 0)
    answers = helpful + not_helpful
    ratings = {r: f.get(f"rating_{r}", 0) for r in range(1, 6)}
    rated = sum(ratings.values())
    nps_counts: dict[int, float] = {n: f.get(f"nps_{n}", 0) for n in range(11)}
    since = as_of - timedelta(days=cfg.signals.feedback.nps_lookback_days)
    for event in events:
        if isinstance(event, NpsEvent) and since <= event.at < as_of:
            nps_counts[event.score] += 1
    nps = nps_value(nps_counts)
    mean_rating = sum(r * n for r, n in ratings.items()) / rated if rated else None
    parts = {
        "helpful": 100 * (helpful + 1) / (answers + 2) if answers else None,
        "rating": 100 * (mean_rating - 1) / 4 if mean_rating is not None else None,
        "nps": (nps + 100) / 2 if nps is not None else None,
    }
    score = _weighted(parts, cfg.signals.feedback.parts.model_dump())
    if score is None:
        return None
    return Component(
        score=score,
        inputs={
            "answers": round(answers),
            "helpful_share": round(helpful / answers, 4) if answers else None,
            "mean_rating": round(mean_rating, 3) if mean_rating is not None else None,
            "ratings": round(rated),
            "nps": round(nps, 1) if nps is not None else None,
            "nps_answers": round(sum(nps_counts.values())),
        },
        headline="helpful_share" if answers else ("mean_rating" if rated else "nps"),
    )


def _latest(events: Iterable[Any], key: str) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for event in sorted(events, key=lambda e: (e.at, e.event_id)):
        latest[getattr(event, key)] = event
    return latest


def tickets(events: Iterable[Event], as_of: datetime, cfg: HealthConfig) -> Component | None:
    t = cfg.signals.tickets
    since = as_of - timedelta(days=t.lookback_days)
    mine = [e for e in events if isinstance(e, TicketEvent) and since <= e.at < as_of]
    if not mine:
        return None
    window_start = as_of - timedelta(days=cfg.signals.window_days)
    first_seen: dict[str, datetime] = {}
    for event in mine:
        first_seen[event.ticket_id] = min(first_seen.get(event.ticket_id, event.at), event.at)
    latest = _latest(mine, "ticket_id")
    open_tickets = [e for e in latest.values() if e.status == "open"]
    weights = t.priority_load.model_dump()
    new = sum(1 for at in first_seen.values() if at >= window_start)
    load = sum(weights[e.priority] for e in open_tickets) + t.new_ticket_load * new
    return Component(
        score=100 / (1 + load / t.half_score_load),
        inputs={
            "open_tickets": len(open_tickets),
            "open_urgent_or_high": sum(1 for e in open_tickets if e.priority in ("high", "urgent")),
            "new_tickets": new,
            "load": round(load, 2),
        },
        headline="open_tickets",
    )


def payment(events: Iterable[Event], as_of: datetime, cfg: HealthConfig) -> Component | None:
    p = cfg.signals.payment
    since = as_of - timedelta(days=p.lookback_days)
    mine = [e for e in events if isinstance(e, PaymentEvent) and since <= e.at < as_of]
    if not mine:
        return None
    latest = _latest(mine, "invoice_id")
    failed = sum(1 for e in latest.values() if e.status == "failed")
    overdue = sum(1 for e in latest.values() if e.status == "overdue")
    paid_late = sum(1 for e in latest.values() if e.status == "paid" and e.days_late > 0)
    penalty = p.penalty.failed * failed + p.penalty.overdue * overdue + p.penalty.paid_late * paid_late
    return Component(
        score=max(0.0, 100 - penalty),
        inputs={
            "invoices": len(latest),
            "unpaid_invoices": failed + overdue,
            "failed": failed,
            "overdue": overdue,
            "paid_late": paid_late,
        },
        headline="unpaid_invoices",
    )
