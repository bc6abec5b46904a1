"""What the report reads from other capabilities' documents: a port and its Firestore and memory
implementations. The reports capability does not import the cost or health capability; it reads
the documents they publish (their layouts are theirs; a test pins the collection names):

- ``cost_days/{YYYY-MM-DD}``: one day's net cost (``total``, ``by_service`` as decimal strings);
- ``cost_snapshots/{YYYY-MM-DD}``: the daily snapshot (budget, target, month-end forecast, and
  whether its billing source was a local fallback);
- ``health_runs/{YYYY-MM-DD}``: the daily health run's summary, whose ``categories`` is the
  distribution of every customer's latest category that day.

Each read is by document id (the days of a period), so no index is needed and a week costs at
most 7 reads per collection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel

COST_DAYS = "cost_days"
COST_SNAPSHOTS = "cost_snapshots"
HEALTH_RUNS = "health_runs"


class CostDay(BaseModel):
    date: date
    total: float
    by_service: dict[str, float] = {}


class CostSnapshot(BaseModel):
    """The fields of a cost snapshot the report shows."""

    as_of: date
    currency: str = "USD"
    budget: float
    target: float
    forecast_month_end: float
    source: str = ""
    fallback: bool = False
    # The month so far (what budgets count) and over how many days (the daily summary).
    month_to_date: float | None = None
    month_to_date_days: int | None = None


class HealthRun(BaseModel):
    as_of: date
    customers: int
    categories: dict[str, int]


class DocumentSource(Protocol):
    def cost_days(self, days: list[date]) -> list[CostDay]: ...

    def cost_snapshot(self, days: list[date]) -> CostSnapshot | None:
        """The latest snapshot taken on one of ``days``."""
        ...

    def health_run(self, days: list[date]) -> HealthRun | None:
        """The latest health run of one of ``days``."""
        ...


def _money(value: Any) -> float:
    """Exact decimal strings as written by the cost capability (a malformed one raises)."""
    return float(Decimal(str(value)))


def cost_day_of(doc: dict[str, Any]) -> CostDay:
    return CostDay(
        date=date.fromisoformat(doc["date"]),
        total=_money(doc.get("total", "0")),
        by_service={name: _money(v) for name, v in (doc.get("by_service") or {}).items()},
    )


def cost_snapshot_of(doc: dict[str, Any]) -> CostSnapshot:
    """A ``cost_snapshots`` document (``{"as_of", "snapshot": {...}}``) as the report needs it."""
    body = doc.get("snapshot") or {}
    budget = body.get("budget") or {}
    source = body.get("source") or {}
    return CostSnapshot(
        as_of=date.fromisoformat(doc.get("as_of") or body["as_of"]),
        currency=body.get("currency", "USD"),
        budget=float(budget.get("amount", 0.0)),
        target=float(budget.get("target", 0.0)),
        forecast_month_end=float((body.get("forecast_month_end") or {}).get("total", 0.0)),
        source=str(source.get("name", "")),
        fallback=bool(source.get("fallback", False)),
        month_to_date=_optional_money((body.get("month_to_date") or {}).get("total")),
        month_to_date_days=(body.get("month_to_date") or {}).get("days"),
    )


def _optional_money(value: Any) -> float | None:
    return None if value is None else float(value)


def health_run_of(doc: dict[str, Any]) -> HealthRun:
    return HealthRun(
        as_of=date.fromisoformat(str(doc["as_of"])),
        customers=int(doc.get("customers", 0)),
        categories={k: int(v) for k, v in (doc.get("categories") or {}).items()},
    )


class _DocumentsById(ABC):
    """The port's three reads over one lookup: a collection's documents of some days."""

    @abstractmethod
    def _docs(self, collection: str, days: list[date]) -> list[dict[str, Any]]:
        """The documents of ``days`` that exist, oldest first."""

    def cost_days(self, days: list[date]) -> list[CostDay]:
        return [cost_day_of(doc) for doc in self._docs(COST_DAYS, days)]

    def cost_snapshot(self, days: list[date]) -> CostSnapshot | None:
        docs = self._docs(COST_SNAPSHOTS, days)
        return cost_snapshot_of(docs[-1]) if docs else None

    def health_run(self, days: list[date]) -> HealthRun | None:
        docs = self._docs(HEALTH_RUNS, days)
        return health_run_of(docs[-1]) if docs else None


class FirestoreDocumentSource(_DocumentsById):
    def __init__(self, client: Any = None) -> None:
        from shared.firestore import get_firestore

        self.client = client or get_firestore()

    def _docs(self, collection: str, days: list[date]) -> list[dict[str, Any]]:
        """The documents of ``days`` that exist, oldest first, in one batched read."""
        refs = [self.client.collection(collection).document(d.isoformat()) for d in days]
        found = {}
        for snap in self.client.get_all(refs):
            if snap.exists:
                found[snap.id] = snap.to_dict() or {}
        return [found[d.isoformat()] for d in sorted(days) if d.isoformat() in found]


class MemoryDocumentSource(_DocumentsById):
    """The same documents held in dicts by id (tests of the pure building code, the bench)."""

    def __init__(self, docs: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
        self.docs = docs or {}

    def _docs(self, collection: str, days: list[date]) -> list[dict[str, Any]]:
        held = self.docs.get(collection, {})
        return [held[d.isoformat()] for d in sorted(days) if d.isoformat() in held]
