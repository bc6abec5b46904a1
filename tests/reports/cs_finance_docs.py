"""Customer, persona-week, cost-snapshot and incident documents for the customer-success, finance
and KPI tests: the persona week and the snapshot are made by the health and cost capabilities' own
code (a change of their layout breaks these tests); customers carry the ``health`` state the daily
run writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from functions.health.config import load_config
from functions.health.personas import Answer, drift_vs_baseline, drift_vs_expected, satisfaction
from functions.health.run import PersonaWeek
from functions.health.store import PERSONAS_COLLECTION, RUNS_COLLECTION, SCORES_COLLECTION
from functions.reports import documents
from functions.reports.documents import MemoryDocumentSource
from tests.reports.business_docs import cost_day, health_run_doc, snapshot_doc

HEALTH_YAML = Path(__file__).resolve().parents[2] / "functions" / "health" / "health.yaml"


def at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def customer(
    cid: str,
    score: float,
    category: str,
    *,
    as_of: date,
    created: datetime,
    csm: str = "Dana Reyes",
    active_days: int = 12,
    nps: float | None = None,
    nps_answers: int = 0,
    movers: list[str] = (),  # type: ignore[assignment]
    fired: dict[str, datetime] | None = None,
    plan: str = "pro",
    segment: str = "smb",
) -> dict[str, Any]:
    return {
        "id": cid,
        "name": cid.title(),
        "plan": plan,
        "segment": segment,
        "contact": {"name": csm, "email": f"{csm.split(maxsplit=1)[0].lower()}@ion.test"},
        "created_at": created,
        "health": {
            "score": score,
            "category": category,
            "as_of": as_of.isoformat(),
            "components": {
                "engagement": {
                    "score": 20.0 if active_days < 5 else 80.0,
                    "weight": 0.25,
                    "inputs": {"active_days": active_days, "requests": 40 * active_days},
                    "headline": "active_days",
                },
                "feedback": {
                    "score": 60.0,
                    "weight": 0.15,
                    "inputs": {"answers": 3, "nps": nps, "nps_answers": nps_answers},
                    "headline": "nps",
                },
            },
            "missing": [],
            "movers": [{"component": "engagement", "delta": -20.0, "reason": m} for m in movers],
            "actions": {
                name: {"active": True, "episode_start": when, "fired": True, "last_fired": when}
                for name, when in (fired or {}).items()
            },
        },
    }


def persona_week(week_start: date, answers: list[Answer], requests: dict[str, float]) -> dict[str, Any]:
    """What the health run stores in ``health_personas/{week_start}``."""
    cfg = load_config(HEALTH_YAML).personas
    baseline = {k: v * 4 for k, v in requests.items()}
    week = PersonaWeek(
        week_start=week_start,
        satisfaction=satisfaction(answers, list(cfg.expected_mix)),
        requests=requests,
        drift=[drift_vs_expected(requests, cfg), drift_vs_baseline(requests, baseline, cfg)],
    )
    return week.model_dump(mode="json")


def snapshot(as_of: date, *, opportunities: list[dict[str, Any]] | None, note: str | None = None) -> dict:
    """A cost snapshot of ``as_of`` over 35 days of cost (one anomalous day), with the fields the
    cost service adds: opportunities, cost per request and per customer."""
    history = {}
    for i in range(35):
        day = as_of - timedelta(days=34 - i)
        run = "400.00" if day == as_of - timedelta(days=2) else "40.00"
        history[day] = cost_day(day, {"Cloud Run": run, "Cloud SQL": "20.00"})
    doc = snapshot_doc(history, as_of)
    doc["opportunities"] = {
        "items": opportunities,
        "total_monthly_saving": sum(o["monthly_saving"] for o in opportunities) if opportunities else None,
        "currency": "USD" if opportunities is not None else None,
        "note": note,
    }
    doc["per_request"] = {"requests": 4_000_000, "cost_per_request": 0.0001, "cost_per_million": 100.0}
    doc["per_customer"] = {
        "customers": {"acme": {"requests": 3_000_000, "share": 0.75, "cost": 300.0}},
        "unattributed_requests": 1_000_000,
        "unattributed_cost": 100.0,
        "attributed_share": 0.75,
        "note": None,
    }
    return doc


def opportunity(description: str, saving: float) -> dict[str, Any]:
    return {
        "recommender": "google.compute.instance.MachineTypeRecommender",
        "name": f"projects/p/recommendations/{description}",
        "description": description,
        "subtype": "CHANGE_MACHINE_TYPE",
        "priority": "P2",
        "monthly_saving": saving,
        "currency": "USD",
    }


def source(
    *,
    customers: list[dict[str, Any]] = (),  # type: ignore[assignment]
    runs: dict[date, dict[str, Any]] | None = None,
    personas: dict[date, dict[str, Any]] | None = None,
    snapshots: dict[date, dict[str, Any]] | None = None,
    scores: dict[str, dict[str, Any]] | None = None,
    incidents: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> MemoryDocumentSource:
    return MemoryDocumentSource(
        {
            documents.CUSTOMERS: {c["id"]: c for c in customers},
            RUNS_COLLECTION: {d.isoformat(): doc for d, doc in (runs or {}).items()},
            PERSONAS_COLLECTION: {d.isoformat(): doc for d, doc in (personas or {}).items()},
            documents.COST_SNAPSHOTS: {
                d.isoformat(): {"as_of": d.isoformat(), "snapshot": body}
                for d, body in (snapshots or {}).items()
            },
            SCORES_COLLECTION: scores or {},
            documents.INCIDENTS: {str(i["id"]): i for i in incidents},
        }
    )


def run(as_of: date, categories: dict[str, int], actions: dict[str, int] | None = None) -> dict[str, Any]:
    doc = health_run_doc(as_of, categories)
    doc["actions_fired"] = actions or {}
    return doc
