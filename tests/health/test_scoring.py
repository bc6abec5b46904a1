"""The pure scoring core: monotone components, renormalisation, category boundaries, movers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from functions.health import signals
from functions.health.config import HealthConfig, load_config
from functions.health.models import NpsEvent, PaymentEvent, TicketEvent
from functions.health.scoring import category_of, combine, score_customer
from functions.health.settings import DEFAULT_CONFIG_FILE
from functions.health.signals import Component, Usage

CFG = load_config(DEFAULT_CONFIG_FILE)
AS_OF = date(2026, 11, 30)
CUTOFF = datetime(2026, 11, 30, tzinfo=UTC)
OLD = CUTOFF - timedelta(days=365)


def usage(active_days: int = 20, per_day: float = 100, before_per_day: float | None = None) -> Usage:
    daily = {AS_OF - timedelta(days=i): per_day for i in range(1, active_days + 1)}
    before = per_day if before_per_day is None else before_per_day
    daily.update({AS_OF - timedelta(days=i): before for i in range(29, 29 + 20)})
    return Usage(daily=daily)


def test_engagement_is_monotone_in_active_days_volume_and_trend() -> None:
    by_days = [signals.engagement(usage(d), AS_OF, 365, CFG).score for d in (0, 5, 10, 19, 20, 28)]
    assert by_days == sorted(by_days)
    assert by_days[0] == 0
    assert by_days[-1] == by_days[-2] == 100
    falling = [
        signals.engagement(usage(20, 100, b), AS_OF, 365, CFG).score for b in (50, 100, 200, 400, 1000)
    ]
    assert falling == sorted(falling, reverse=True)
    component = signals.engagement(usage(20, 100, 400), AS_OF, 365, CFG)
    assert component.inputs["trend_ratio"] == 0.25
    assert component.inputs["active_days"] == 20


def test_young_customers_are_judged_on_the_days_they_existed_and_without_trend() -> None:
    ten_days = Usage(daily={AS_OF - timedelta(days=i): 50 for i in range(1, 8)})
    young = signals.engagement(ten_days, AS_OF, 10, CFG)
    assert young.inputs["trend_ratio"] is None
    # 7 active of 10 days -> 19.6 of 28 scaled, nearly full activity
    assert young.score > signals.engagement(ten_days, AS_OF, 365, CFG).score


def test_adoption_counts_core_features_used() -> None:
    u = Usage(features={"route_key": 5, "bulk": 1, "recommend": 0})
    component = signals.adoption(u, CFG)
    assert component.score == 40
    assert component.inputs["unused"] == ["route_message", "recommend", "feedback"]


def test_api_health_falls_with_errors_and_rate_limits_and_is_missing_without_requests() -> None:
    assert signals.api_health(Usage(), CFG) is None
    scores = [
        signals.api_health(Usage(outcomes={"ok": 100 - bad, "rate_limited": bad}), CFG).score  # type: ignore[union-attr]
        for bad in (0, 5, 10, 20, 40)
    ]
    assert scores == [100, 75, 50, 0, 0]


def test_feedback_mixes_helpful_ratings_and_nps_from_both_sources() -> None:
    assert signals.feedback(Usage(), [], CUTOFF, CFG) is None
    good = signals.feedback(Usage(feedback={"helpful": 9, "not_helpful": 1, "rating_5": 4}), [], CUTOFF, CFG)
    bad = signals.feedback(Usage(feedback={"helpful": 1, "not_helpful": 9, "rating_1": 4}), [], CUTOFF, CFG)
    assert good is not None
    assert bad is not None
    assert good.score > 80
    assert bad.score < 20
    survey = [
        NpsEvent(type="nps", event_id=f"n{i}", at=CUTOFF - timedelta(days=3), score=s)
        for i, s in enumerate((10, 9, 3))
    ]
    with_nps = signals.feedback(Usage(feedback={"nps_10": 1}), survey, CUTOFF, CFG)
    assert with_nps is not None
    assert with_nps.inputs["nps"] == 50.0  # 3 promoters, 1 detractor of 4
    assert with_nps.score == 75.0
    stale = [NpsEvent(type="nps", event_id="old", at=CUTOFF - timedelta(days=400), score=0)]
    assert signals.feedback(Usage(), stale, CUTOFF, CFG) is None


def _ticket(i: int, status: str, priority: str = "normal", days_ago: float = 3) -> TicketEvent:
    return TicketEvent(
        type="ticket",
        event_id=f"t{i}-{status}",
        at=CUTOFF - timedelta(days=days_ago),
        ticket_id=f"T{i}",
        status=status,  # type: ignore[arg-type]
        priority=priority,  # type: ignore[arg-type]
    )


def test_tickets_score_falls_with_open_load_and_the_latest_state_counts() -> None:
    assert signals.tickets([], CUTOFF, CFG) is None
    closed = signals.tickets(
        [_ticket(1, "open", days_ago=60), _ticket(1, "closed", days_ago=50)], CUTOFF, CFG
    )
    assert closed is not None
    assert closed.score == 100
    one = signals.tickets([_ticket(1, "open")], CUTOFF, CFG)
    urgent = signals.tickets([_ticket(1, "open", "urgent")], CUTOFF, CFG)
    assert one is not None
    assert urgent is not None
    assert closed.score > one.score > urgent.score
    assert urgent.inputs["open_urgent_or_high"] == 1


def test_payment_penalises_the_latest_state_of_each_invoice() -> None:
    def pay(i: int, status: str, days_ago: float, late: int = 0) -> PaymentEvent:
        return PaymentEvent(
            type="payment",
            event_id=f"p{i}-{status}",
            at=CUTOFF - timedelta(days=days_ago),
            invoice_id=f"I{i}",
            status=status,  # type: ignore[arg-type]
            days_late=late,
        )

    settled = signals.payment([pay(1, "overdue", 20), pay(1, "paid", 10, late=12)], CUTOFF, CFG)
    failing = signals.payment([pay(1, "paid", 40), pay(2, "failed", 5), pay(3, "overdue", 2)], CUTOFF, CFG)
    assert settled is not None
    assert failing is not None
    assert settled.score == 90
    assert failing.score == 35
    assert failing.inputs["unpaid_invoices"] == 2


def test_weights_renormalise_over_present_signals_and_missing_is_listed() -> None:
    found = {
        "engagement": Component(score=80),
        "adoption": Component(score=40),
        "api_health": None,
        "feedback": None,
        "tickets": None,
        "payment": None,
    }
    result = combine("c", AS_OF, found, CFG)
    # 0.25 and 0.15 renormalised to 0.625 and 0.375: 0.625*80 + 0.375*40 = 65
    assert result.score == 65.0
    assert result.components["engagement"].weight == 0.625
    assert result.missing == ["api_health", "feedback", "tickets", "payment"]
    assert sum(c.weight for c in result.components.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (100, "healthy"),
        (70.0, "healthy"),
        (69.9, "at_risk"),
        (40.0, "at_risk"),
        (39.9, "churn_risk"),
        (0, "churn_risk"),
    ],
)
def test_category_boundaries(score: float, category: str) -> None:
    assert category_of(score, CFG) == category


def test_the_shown_score_and_its_category_agree_at_the_boundary() -> None:
    found = {
        "engagement": Component(score=69.96),
        "adoption": None,
        "api_health": None,
        "feedback": None,
        "tickets": None,
        "payment": None,
    }
    result = combine("c", AS_OF, found, CFG)
    assert (result.score, result.category) == (70.0, "healthy")


def test_movers_name_the_component_and_its_headline_input() -> None:
    before = score_customer(
        "c", created_at=OLD, as_of=AS_OF - timedelta(days=1), usage=usage(19), events=[], cfg=CFG
    )
    stored = before.model_dump(mode="json")
    after = score_customer(
        "c", created_at=OLD, as_of=AS_OF, usage=usage(6), events=[], cfg=CFG, previous=stored
    )
    assert after.previous is not None
    assert after.previous["score"] == before.score
    top = after.movers[0]
    assert top.component == "engagement"
    assert top.delta < 0
    assert "active_days 18 -> 6" in top.reason or "active_days 19 -> 6" in top.reason


def test_config_is_validated(tmp_path: Path) -> None:
    good = DEFAULT_CONFIG_FILE.read_text()
    for broken, message in [
        (good.replace("engagement: 0.25", "engagement: 0.35"), "add up to 1"),
        (good.replace("  payment: 0.15\n", "", 1), "missing payment"),
        (good.replace("healthy: 70", "healthy: 30"), "below categories.healthy"),
        (good.replace("Lua: 0.23", "Lua: 0.5"), "expected_mix"),
        (good.replace("\nweights:\n", "\nweights:\n  karma: 0.0\n"), "karma"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(broken)
        with pytest.raises(ValidationError, match=message):
            load_config(path)
    assert isinstance(load_config(DEFAULT_CONFIG_FILE), HealthConfig)


def test_a_customer_whose_usage_was_refused_is_usage_unknown_and_no_usage_action_fires() -> None:
    """Refused usage is incomplete usage: never scored as idle, nor acted upon as such."""
    from functions.health.actions import conditions

    idle = Usage()  # what a customer whose points were all refused would look like
    refused = Usage(refused=3)
    scored = score_customer("acme", created_at=OLD, as_of=AS_OF, usage=idle, events=[], cfg=CFG)
    unknown = score_customer("acme", created_at=OLD, as_of=AS_OF, usage=refused, events=[], cfg=CFG)
    assert scored.category == "churn_risk"
    assert unknown.category == "usage_unknown"
    assert unknown.usage_refused == 3
    assert unknown.score == scored.score  # what was stored is still shown
    reasons = conditions(scored, 365, CFG)
    for action in ("training_outreach", "retention_campaign", "education_campaign"):
        assert reasons[action]
    assert not any(conditions(unknown, 365, CFG).values())
    young = score_customer(
        "new", created_at=CUTOFF - timedelta(days=2), as_of=AS_OF, usage=refused, events=[], cfg=CFG
    )
    assert conditions(young, 2, CFG)["onboarding_checkin"]  # by age alone
