"""The daily run on the emulators: Firestore store, notices on the Pub/Sub emulator, usage from
memory (the metric-store path is tested end to end with routing in test_routing_usage.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from functions.health import customer_events, registry
from functions.health.config import load_config
from functions.health.models import CustomerIn, PaymentEvent
from functions.health.personas import Answer
from functions.health.run import run_health
from functions.health.settings import DEFAULT_CONFIG_FILE
from functions.health.signals import Usage
from functions.health.store import FirestoreHealthStore
from functions.health.usage import MemoryUsage
from shared import clock
from shared.notices import publish_notice

pytestmark = pytest.mark.emulators

CFG = load_config(DEFAULT_CONFIG_FILE)
AS_OF = date(2026, 11, 30)
FEATURES = {"route_key": 10, "route_message": 10, "recommend": 3, "bulk": 1, "feedback": 2}


def busy(as_of: date, days: int = 28, per_day: float = 100) -> Usage:
    return Usage(
        daily={as_of - timedelta(days=i): per_day for i in range(1, days + 1)}
        | {as_of - timedelta(days=i): per_day for i in range(29, 57)},
        features=dict(FEATURES),
        outcomes={"ok": 990, "client_error": 10},
        feedback={"helpful": 30, "not_helpful": 5, "rating_5": 10},
    )


def _create(customer_id: str, created: datetime, email: str | None = "csm@example.com") -> None:
    previous = clock.set_clock(clock.FrozenClock(created))
    try:
        registry.create_customer(
            CustomerIn(id=customer_id, name=customer_id.title(), contact={"email": email} if email else None)
        )  # type: ignore[arg-type]
    finally:
        clock.set_clock(previous)


def test_run_scores_stores_fires_once_and_explains_moves(fs, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    old = datetime(2025, 1, 1, tzinfo=UTC)
    _create("thriving", old)
    _create("fading", old)
    _create("fresh", datetime(2026, 11, 27, tzinfo=UTC))
    customer_events.import_events(
        "fading",
        [
            PaymentEvent(
                type="payment",
                event_id="p1",
                at=datetime(2026, 11, 20, tzinfo=UTC),
                invoice_id="I1",
                status="failed",
            )
        ],
    )
    source = MemoryUsage(
        usage={
            "thriving": busy(AS_OF),
            "fading": Usage(
                daily={AS_OF - timedelta(days=i): 2 for i in range(1, 4)}
                | {AS_OF - timedelta(days=i): 100 for i in range(29, 57)},
                features={"route_key": 6},
                outcomes={"ok": 3, "server_error": 3},
            ),
        }
    )
    summary = run_health(
        AS_OF, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice
    )
    assert summary.customers == 3
    assert summary.categories == {"healthy": 1, "at_risk": 0, "churn_risk": 2, "usage_unknown": 0}
    assert summary.actions_fired == {
        "retention_campaign": 1,
        "training_outreach": 1,
        "education_campaign": 1,
        "onboarding_checkin": 1,
    }
    assert summary.reads_per_customer == pytest.approx(4 / 3, abs=1e-3)  # the customers and one event

    thriving = fs.collection("customers").document("thriving").get().to_dict()["health"]
    assert thriving["category"] == "healthy"
    assert set(thriving["components"]) == {"engagement", "adoption", "api_health", "feedback"}
    assert thriving["missing"] == ["tickets", "payment"]
    fading = fs.collection("customers").document("fading").get().to_dict()["health"]
    assert fading["components"]["payment"]["score"] == 60
    assert fs.collection("health_scores").document("fading:2026-11-30").get().exists

    notices = alerts_inbox()
    assert sorted((n["labels"]["customer"], n["labels"]["action"]) for n in notices) == [
        ("fading", "education_campaign"),
        ("fading", "retention_campaign"),
        ("fading", "training_outreach"),
        ("fresh", "onboarding_checkin"),
    ]
    assert {n["severity"] for n in notices} == {"low"}
    assert notices[0]["annotations"]["contact_email"] == "csm@example.com"

    again = run_health(
        AS_OF, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice
    )
    assert again.notices_published == 0  # a re-run of the day sends nothing again
    assert again.actions_fired == summary.actions_fired  # and keeps what the day fired on record
    assert alerts_inbox() == []
    rerun = fs.collection("customers").document("thriving").get().to_dict()["health"]
    assert rerun["score"] == thriving["score"]

    next_day = AS_OF + timedelta(days=1)
    source.usage["thriving"] = Usage(
        daily={next_day - timedelta(days=i): 100 for i in range(1, 7)}
        | {next_day - timedelta(days=i): 100 for i in range(29, 57)},
        features=dict(FEATURES),
        outcomes={"ok": 600},
        feedback={"helpful": 30, "not_helpful": 5, "rating_5": 10},
    )
    run_health(next_day, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice)
    moved = fs.collection("customers").document("thriving").get().to_dict()["health"]
    assert moved["previous"]["score"] == thriving["score"]
    assert moved["movers"][0]["component"] == "engagement"
    assert "active_days 28 -> 6" in moved["movers"][0]["reason"]


def test_persona_week_and_drift_notice_once_per_episode(fs, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    live = {"Lua": 2500, "Elro": 2500, "Riri": 2500, "Nana": 2500}
    monday = date(2026, 11, 23)
    weeks = {monday - timedelta(weeks=i): dict(live) for i in range(1, 5)}
    weeks[monday] = {"Lua": 4000, "Elro": 1000, "Riri": 2500, "Nana": 2500}
    answers = [
        (monday + timedelta(days=1), Answer(persona="Lua", helpful=i % 4 != 0, rating=4)) for i in range(40)
    ]
    source = MemoryUsage(weeks=weeks, answers=answers)
    store = FirestoreHealthStore()
    summary = run_health(AS_OF, cfg=CFG, usage_source=source, store=store, publish=publish_notice)
    assert summary.personas_week == monday
    assert summary.drift == ["expected", "baseline"]
    stored = fs.collection("health_personas").document("2026-11-23").get().to_dict()
    lua = next(s for s in stored["satisfaction"] if s["persona"] == "Lua")
    assert lua["answers"] == 40
    assert lua["helpful_share"] == 0.75
    notices = alerts_inbox()
    assert sorted(n["labels"]["against"] for n in notices) == ["baseline", "expected"]
    assert {n["severity"] for n in notices} == {"medium"}
    run_health(AS_OF + timedelta(days=1), cfg=CFG, usage_source=source, store=store, publish=publish_notice)
    assert alerts_inbox() == []


def test_a_rerun_of_a_day_keeps_what_fired_that_day_on_record(fs, alerts_inbox, health_client) -> None:  # type: ignore[no-untyped-def]
    """A re-run of a finished day (the schedule's retry, an operator's POST /v1/health/run) sends
    nothing again, and must not erase what the day's run fired from the day's score record, the
    customer's history and the run summary the weekly report counts actions from."""
    _create("fresh", datetime(2026, 11, 27, tzinfo=UTC))
    source = MemoryUsage(usage={})
    first = run_health(
        AS_OF, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice
    )
    assert first.actions_fired == {"onboarding_checkin": 1}
    assert len(alerts_inbox()) == 1

    again = run_health(
        AS_OF, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice
    )
    assert again.notices_published == 0
    assert alerts_inbox() == []
    assert again.actions_fired == {"onboarding_checkin": 1}
    record = fs.collection("health_scores").document("fresh:2026-11-30").get().to_dict()
    assert [fired["action"] for fired in record["actions_fired"]] == ["onboarding_checkin"]
    summary = fs.collection("health_runs").document("2026-11-30").get().to_dict()
    assert summary["actions_fired"] == {"onboarding_checkin": 1}
    history = health_client.get("/v1/health/customers/fresh").get_json()["history"]
    assert [fired["action"] for fired in history[0]["actions_fired"]] == ["onboarding_checkin"]

    # The next day is a day of its own: nothing fired then.
    run_health(
        AS_OF + timedelta(days=1),
        cfg=CFG,
        usage_source=source,
        store=FirestoreHealthStore(),
        publish=publish_notice,
    )
    assert fs.collection("health_runs").document("2026-12-01").get().to_dict()["actions_fired"] == {}


def test_scoring_an_earlier_day_fills_its_history_without_replacing_the_latest_score(  # type: ignore[no-untyped-def]
    fs, alerts_inbox, health_client
) -> None:
    """A missed day scored by hand after a later one (POST /v1/health/run?as_of=...): its record
    is kept, but the customer's latest score, its action states and what the CSMs are sent are
    the later day's; an old day's data sent no retention campaign and took over the list."""
    _create("acme", datetime(2025, 1, 1, tzinfo=UTC))
    store = FirestoreHealthStore()
    latest = run_health(
        AS_OF,
        cfg=CFG,
        usage_source=MemoryUsage(usage={"acme": busy(AS_OF)}),
        store=store,
        publish=publish_notice,
    )
    assert latest.categories["healthy"] == 1
    before = fs.collection("customers").document("acme").get().to_dict()["health"]

    missed = AS_OF - timedelta(days=3)
    backfill = run_health(
        missed, cfg=CFG, usage_source=MemoryUsage(usage={}), store=store, publish=publish_notice
    )
    assert backfill.categories["churn_risk"] == 1  # that day's score, as the day's data says
    assert backfill.notices_published == 0
    assert alerts_inbox() == []
    assert fs.collection("customers").document("acme").get().to_dict()["health"] == before
    assert fs.collection("health_scores").document(f"acme:{missed.isoformat()}").get().to_dict()[
        "category"
    ] == ("churn_risk")
    page = health_client.get("/v1/health/customers/acme?days=5").get_json()
    assert (page["as_of"], page["category"]) == (AS_OF.isoformat(), "healthy")
    assert [day["as_of"] for day in page["history"]] == [AS_OF.isoformat(), missed.isoformat()]
    listed = health_client.get("/v1/health/customers?category=healthy").get_json()["customers"]
    assert [customer["id"] for customer in listed] == ["acme"]


def test_scoring_a_day_again_after_later_days_keeps_what_it_fired(fs, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    _create("acme", datetime(2025, 1, 1, tzinfo=UTC))
    store, idle = FirestoreHealthStore(), MemoryUsage(usage={})
    early = AS_OF - timedelta(days=3)
    first = run_health(early, cfg=CFG, usage_source=idle, store=store, publish=publish_notice)
    assert first.actions_fired  # an idle old customer: retention, training, education
    alerts_inbox()
    run_health(AS_OF, cfg=CFG, usage_source=idle, store=store, publish=publish_notice)
    latest = fs.collection("customers").document("acme").get().to_dict()["health"]

    again = run_health(early, cfg=CFG, usage_source=idle, store=store, publish=publish_notice)
    assert (again.actions_fired, again.notices_published) == (first.actions_fired, 0)
    assert alerts_inbox() == []
    record = fs.collection("health_scores").document(f"acme:{early.isoformat()}").get().to_dict()
    assert {fired["action"] for fired in record["actions_fired"]} == set(first.actions_fired)
    assert fs.collection("customers").document("acme").get().to_dict()["health"] == latest


def test_a_week_scored_late_leaves_the_drift_episode_alone(fs, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    live = {"Lua": 2500, "Elro": 2500, "Riri": 2500, "Nana": 2500}
    monday = date(2026, 11, 23)
    weeks = {monday - timedelta(weeks=i): dict(live) for i in range(1, 6)}
    weeks[monday] = {"Lua": 4000, "Elro": 1000, "Riri": 2500, "Nana": 2500}
    source, store = MemoryUsage(weeks=weeks), FirestoreHealthStore()
    assert run_health(AS_OF, cfg=CFG, usage_source=source, store=store, publish=publish_notice).drift
    assert len(alerts_inbox()) == 2
    episode = fs.collection("health_drift").document("expected").get().to_dict()
    # A day of the week before, scored late: that week had no drift, but the episode goes on.
    run_health(AS_OF - timedelta(days=7), cfg=CFG, usage_source=source, store=store, publish=publish_notice)
    assert fs.collection("health_drift").document("expected").get().to_dict() == episode
    run_health(AS_OF + timedelta(days=1), cfg=CFG, usage_source=source, store=store, publish=publish_notice)
    assert alerts_inbox() == []  # the same episode: no second notice
