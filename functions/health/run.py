"""The daily run: score every customer, fire success actions, weekly persona satisfaction and
drift. Over ports (usage source, store, notice publisher), so tests and the bench run the very
same code on memory or the emulators.

Reads: the customers stream (one document per customer, holding the previous result and the
action states), one range query for the imported events of the longest lookback, three metric
queries for every customer's usage, and for the personas one metric query and one range read of
the week's feedback. Writes: two per customer (the daily record and the customer's state) in
batches. Time of the run's "now" is the start of ``as_of`` (UTC midnight), so a re-run of a day
computes the same results and publishes the same notice ids (fan-out sends each once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.health.action_notices import action_notice
from functions.health.actions import Firing, conditions, states_from, step
from functions.health.config import HealthConfig
from functions.health.personas import (
    DriftTest,
    Satisfaction,
    drift_vs_baseline,
    drift_vs_expected,
    satisfaction,
)
from functions.health.scoring import USAGE_UNKNOWN, score_customer
from functions.health.store import (
    DRIFT_COLLECTION,
    PERSONAS_COLLECTION,
    RUNS_COLLECTION,
    SCORE_RETENTION,
    SCORES_COLLECTION,
    HealthStore,
    Written,
    score_doc_id,
)
from functions.health.usage import UsageSource, midnight, no_usage
from shared.logging import get_logger
from shared.messages import AlertTransition
from shared.notices import notice_transition

log = get_logger("health.run")

Publisher = Callable[[AlertTransition], Any]
UNKNOWN_LISTED = 50


class RunSummary(BaseModel):
    as_of: date
    customers: int
    categories: dict[str, int]
    actions_fired: dict[str, int]  # on the day scored (a re-run of the day keeps its earlier run's)
    notices_published: int  # by this run (a re-run of a day sends nothing already sent)
    usage_queries: int
    usage_reads: int = 0  # customer usage documents read (the usage store's, whatever the customers)
    # Customers whose usage ingestion refused in part: scored usage_unknown, no usage-driven action.
    usage_unknown: int = 0
    usage_unknown_customers: list[str] = []  # the first few, sorted
    store_reads: int
    reads_per_customer: float  # of scoring (the persona part reads a fixed few)
    seconds: float
    personas_week: date | None = None
    drift: list[str] = []


class PersonaWeek(BaseModel):
    week_start: date
    satisfaction: list[Satisfaction]
    requests: dict[str, float]
    drift: list[DriftTest]


def last_complete_week(as_of: date) -> date:
    """Monday of the last Monday-Sunday week that ended before ``as_of``."""
    return as_of - timedelta(days=as_of.weekday() + 7)


def _previous(state: dict[str, Any], as_of: date) -> dict[str, Any] | None:
    """The result to compare with: the stored one, or on a re-run of the same day the one before."""
    if not state:
        return None
    if state.get("as_of") == as_of.isoformat():
        return state.get("previous")
    return {k: state.get(k) for k in ("score", "category", "as_of", "components")}


def _fired_on_the_day(state: dict[str, Any], as_of: date, fired: list[Firing]) -> list[dict[str, str]]:
    """What fired for the customer on ``as_of``: on a re-run of the day, what its earlier run
    fired (sent then, not again now: without it the re-run's records said nothing fired), and
    what this run fires."""
    earlier = list(state.get("actions_fired") or []) if state.get("as_of") == as_of.isoformat() else []
    known = {entry["action"] for entry in earlier}
    return earlier + [{"action": f.action, "reason": f.reason} for f in fired if f.action not in known]


def _keep_what_fired(outcomes: list[Written], as_of: date, store: HealthStore) -> None:
    """A day scored again behind a later one keeps what its own run fired (one batched read of
    those customers' records of the day; nothing fires now for a day behind)."""
    behind = [outcome for outcome in outcomes if outcome.state is None]
    if not behind:
        return
    kept = store.get_docs(SCORES_COLLECTION, [score_doc_id(o.customer_id, as_of) for o in behind])
    for outcome in behind:
        record = kept.get(score_doc_id(outcome.customer_id, as_of)) or {}
        outcome.record["actions_fired"] = list(record.get("actions_fired") or [])


def run_health(
    as_of: date,
    *,
    cfg: HealthConfig,
    usage_source: UsageSource,
    store: HealthStore,
    publish: Publisher | None,
    public_url: str | None = None,
) -> RunSummary:
    """``public_url``: where people open the health API (each notice links the customer's page)."""
    started = time.perf_counter()
    now = midnight(as_of)
    lookback = max(
        cfg.signals.tickets.lookback_days,
        cfg.signals.payment.lookback_days,
        cfg.signals.feedback.nps_lookback_days,
    )
    customers = store.customers()
    events = store.events_since(now - timedelta(days=lookback))
    usage = usage_source.customers_usage(as_of, cfg.signals.window_days)
    categories = {"healthy": 0, "at_risk": 0, "churn_risk": 0, USAGE_UNKNOWN: 0}
    unknown: list[str] = []
    fired_counts: dict[str, int] = {}
    published = 0
    outcomes: list[Written] = []
    for customer, state in customers:
        if customer.created_at >= now:
            continue  # created after the day scored
        if customer.status != "active":
            continue  # deactivated: neither scored nor nagged (its last result stays on show)
        # A day before the customer's latest score (a missed day scored by hand afterwards): its
        # record only. The latest score, the action states and what CSMs are sent stay the later
        # day's: an old day's data sent old actions and took over the listings.
        behind = str(state.get("as_of") or "") > as_of.isoformat()
        previous = None if behind else _previous(state, as_of)
        result = score_customer(
            customer.id,
            created_at=customer.created_at,
            as_of=as_of,
            usage=usage.get(customer.id) or no_usage(usage_source, customer.id),
            events=events.get(customer.id, []),
            cfg=cfg,
            previous=previous,
        )
        age_days = (now - customer.created_at).total_seconds() / 86400
        action_states, fired = (
            ({}, [])
            if behind
            else step(states_from(state.get("actions")), conditions(result, age_days, cfg), now, cfg)
        )
        for firing in fired:
            page = f"{public_url.rstrip('/')}/v1/health/customers/{customer.id}" if public_url else None
            notice = action_notice(customer, firing, result, now, page)
            log.info(
                "success action",
                extra={
                    "customer_id": customer.id,
                    "action": firing.action,
                    "reason": firing.reason,
                    "published": publish is not None,
                },
            )
            if publish is not None:
                publish(notice)  # raises: the run fails before storing, a retry republishes the same id
                published += 1
        fired_today = _fired_on_the_day(state, as_of, fired)
        categories[result.category] += 1
        if result.category == USAGE_UNKNOWN:
            unknown.append(customer.id)
        record = {
            **result.model_dump(mode="json"),
            "actions_fired": fired_today,
            "expire_at": now + SCORE_RETENTION,
        }
        new_state = {
            "score": result.score,
            "category": result.category,
            "as_of": as_of.isoformat(),
            "components": {k: v.model_dump(mode="json") for k, v in result.components.items()},
            "missing": result.missing,
            "movers": [m.model_dump() for m in result.movers],
            "previous": previous,
            "actions": {k: v.model_dump(mode="python") for k, v in action_states.items()},
            "actions_fired": fired_today,
        }
        outcomes.append(Written(customer.id, as_of, record, None if behind else new_state))
    _keep_what_fired(outcomes, as_of, store)
    for outcome in outcomes:
        for entry in outcome.record["actions_fired"]:
            fired_counts[entry["action"]] = fired_counts.get(entry["action"], 0) + 1
    store.save(outcomes)
    scoring_reads = store.reads

    week = last_complete_week(as_of)
    persona_week, drift_names, drift_published = personas_run(
        week, cfg=cfg, usage_source=usage_source, store=store, publish=publish
    )
    published += drift_published
    scored = len(outcomes)
    summary = RunSummary(
        as_of=as_of,
        customers=scored,
        categories=categories,
        actions_fired=fired_counts,
        notices_published=published,
        usage_queries=getattr(usage_source, "queries", 0),
        usage_reads=getattr(usage_source, "reads", 0),
        usage_unknown=len(unknown),
        usage_unknown_customers=sorted(unknown)[:UNKNOWN_LISTED],
        store_reads=store.reads,
        reads_per_customer=round(scoring_reads / scored, 3) if scored else 0.0,
        seconds=round(time.perf_counter() - started, 3),
        personas_week=persona_week.week_start,
        drift=drift_names,
    )
    store.put_doc(
        RUNS_COLLECTION,
        as_of.isoformat(),
        {**summary.model_dump(mode="json"), "finished_at": datetime.now(UTC)},
    )
    if unknown:
        log.warning(
            "customers scored usage_unknown: ingestion refused some of their usage",
            extra={"customers": len(unknown), "first": summary.usage_unknown_customers},
        )
    log.info("health run done", extra=summary.model_dump(mode="json"))
    return summary


def personas_run(
    week: date, *, cfg: HealthConfig, usage_source: UsageSource, store: HealthStore, publish: Publisher | None
) -> tuple[PersonaWeek, list[str], int]:
    """Satisfaction and drift for the week starting ``week``; a drift notice (``medium``) when a
    test turns to drift (an episode), not again while it stays."""
    p = cfg.personas
    counts = usage_source.persona_counts(week - timedelta(weeks=p.baseline_weeks), p.baseline_weeks + 1)
    current = counts[-1]
    baseline: dict[str, float] = {}
    for earlier in counts[:-1]:
        for persona, value in earlier.items():
            baseline[persona] = baseline.get(persona, 0) + value
    answers = usage_source.feedback_answers(week, week + timedelta(days=7))
    tests = [drift_vs_expected(current, p), drift_vs_baseline(current, baseline, p)]
    result = PersonaWeek(
        week_start=week,
        satisfaction=satisfaction(answers, list(p.expected_mix)),
        requests=current,
        drift=tests,
    )
    store.put_doc(PERSONAS_COLLECTION, week.isoformat(), result.model_dump(mode="json"))
    drifting, published = [], 0
    for test in tests:
        state = store.get_doc(DRIFT_COLLECTION, test.against) or {}
        if test.drift:
            drifting.append(test.against)
        if str(state.get("week") or "") > week.isoformat():
            continue  # a week behind the episode's state (a day scored late): no notice, no change
        if test.drift and not state.get("active"):
            if publish is not None:
                publish(_drift_notice(test, week))
                published += 1
            log.warning(
                "persona mix drift",
                extra={"against": test.against, "week": week.isoformat(), "js": test.js_distance},
            )
        if bool(state.get("active")) != test.drift or state.get("week") != week.isoformat():
            store.put_doc(
                DRIFT_COLLECTION,
                test.against,
                {
                    "active": test.drift,
                    "week": week.isoformat(),
                    "since": state.get("since") if test.drift and state.get("active") else week.isoformat(),
                },
            )
    return result, drifting, published


def _drift_notice(test: DriftTest, week: date) -> AlertTransition:
    moved = ", ".join(
        f"{k} {100 * v:.1f}% (vs {100 * test.reference.get(k, 0):.1f}%)" for k, v in test.shares.items()
    )
    return notice_transition(
        notice_id=f"health/persona-drift/{test.against}/{week.isoformat()}",
        source="health",
        name="persona-drift",
        severity="medium",
        summary=f"Persona mix moved against the {test.against} mix, week of {week.isoformat()}: {moved}",
        at=midnight(week + timedelta(days=7)),
        labels={"against": test.against},
        annotations={
            "p_value": f"{test.p_value:.3g}",
            "js_distance": f"{test.js_distance}",
            "requests": str(test.requests),
        },
        value=test.js_distance,
        threshold=None,
    )
