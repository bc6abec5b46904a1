"""Cost and health documents for report tests, made by those capabilities' own code so that a
change of their layout breaks the report's tests."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from functions.cost.ledger import DayCost
from functions.cost.snapshot_build import build_snapshot
from functions.health.run import RunSummary


def cost_day(day: date, by_service: dict[str, str]) -> DayCost:
    cost = DayCost(day)
    for service, amount in by_service.items():
        cost.by_service[service] = Decimal(amount)
        cost.total += Decimal(amount)
        cost.gross += Decimal(amount)
        cost.rows += 1
    return cost


def snapshot_doc(
    history: dict[date, DayCost], as_of: date, *, fallback: bool = False, currency: str = "USD"
) -> dict[str, Any]:
    """What the cost capability stores in ``cost_snapshots/{as_of}`` (its ``snapshot`` field)."""
    doc = build_snapshot(history, as_of, currency=currency).model_dump(mode="json")
    doc["source"] = {"name": "file (local fallback)" if fallback else "bigquery", "fallback": fallback}
    return doc


def health_run_doc(as_of: date, categories: dict[str, int]) -> dict[str, Any]:
    summary = RunSummary(
        as_of=as_of,
        customers=sum(categories.values()),
        categories=categories,
        actions_fired={},
        notices_published=0,
        usage_queries=0,
        store_reads=0,
        reads_per_customer=0.0,
        seconds=0.1,
    )
    return summary.model_dump(mode="json")


def days_of(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]
