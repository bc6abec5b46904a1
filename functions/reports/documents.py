"""What the report reads from other capabilities' documents: a port and its Firestore and memory
implementations. The reports capability does not import the cost or health capability; it reads
the documents they publish (their layouts are theirs; a test pins the collection names):

- ``cost_days/{YYYY-MM-DD}``: one day's net cost (``total``, ``by_service`` as decimal strings,
  in ``currency``);
- ``cost_snapshots/{YYYY-MM-DD}``: the daily snapshot (its ``currency``, budget, target, month-end
  forecast, and whether its billing source was a local fallback);
- ``health_runs/{YYYY-MM-DD}``: the daily health run's summary, whose ``categories`` is the
  distribution of every customer's latest category that day.

Each read is by document id (the days of a period), so no index is needed and a week costs at
most 7 reads per collection.

The customer-success and finance views (``figures.py``) read more of the same documents through
the same port: the snapshots' whole bodies (anomalies, Recommender opportunities, savings, cost
per request and per customer), every daily health run of a window (the category trend, the
actions fired), the weekly persona satisfaction ``health_personas/{monday}``, the customers
registry ``customers/{id}`` (each customer's latest ``health``), their daily records
``health_scores/{id}:{date}`` (time to value), and the incidents resolved in a window
(``incidents``, whose ``resolved_at - opened_at`` is the MTTR).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel

COST_DAYS = "cost_days"
COST_SNAPSHOTS = "cost_snapshots"
HEALTH_RUNS = "health_runs"
HEALTH_PERSONAS = "health_personas"
HEALTH_SCORES = "health_scores"
CUSTOMERS = "customers"
INCIDENTS = "incidents"


class CostDay(BaseModel):
    date: date
    total: float
    by_service: dict[str, float] = {}
    # The billing account's ISO code; None on days stored before the cost capability wrote it.
    currency: str | None = None


class CostSnapshot(BaseModel):
    """The fields of a cost snapshot the report shows."""

    as_of: date
    currency: str | None = None  # None: the document does not say (money.py's fallback)
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

    def snapshot_bodies(self, days: list[date]) -> list[dict[str, Any]]:
        """The cost snapshots taken on ``days`` (their ``snapshot`` field), oldest first."""
        ...

    def health_runs(self, days: list[date]) -> list[dict[str, Any]]:
        """The health runs of ``days``, oldest first."""
        ...

    def persona_weeks(self, mondays: list[date]) -> list[dict[str, Any]]:
        """The weekly persona satisfaction and drift of the weeks starting ``mondays``, oldest first."""
        ...

    def customers(self) -> list[dict[str, Any]]:
        """Every registered customer with its latest ``health``."""
        ...

    def health_scores(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Daily health records ``{customer}:{date}`` that exist, by id."""
        ...

    def incidents_resolved(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Incidents resolved in ``[start, end)``."""
        ...


def _money(value: Any) -> float:
    """Exact decimal strings as written by the cost capability (a malformed one raises)."""
    return float(Decimal(str(value)))


def cost_day_of(doc: dict[str, Any]) -> CostDay:
    return CostDay(
        date=date.fromisoformat(doc["date"]),
        total=_money(doc.get("total", "0")),
        by_service={name: _money(v) for name, v in (doc.get("by_service") or {}).items()},
        currency=doc.get("currency") or None,
    )


def cost_snapshot_of(doc: dict[str, Any]) -> CostSnapshot:
    """A ``cost_snapshots`` document (``{"as_of", "snapshot": {...}}``) as the report needs it."""
    body = doc.get("snapshot") or {}
    budget = body.get("budget") or {}
    source = body.get("source") or {}
    return CostSnapshot(
        as_of=date.fromisoformat(doc.get("as_of") or body["as_of"]),
        currency=body.get("currency") or None,
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

    def snapshot_bodies(self, days: list[date]) -> list[dict[str, Any]]:
        return [doc.get("snapshot") or {} for doc in self._docs(COST_SNAPSHOTS, days)]

    def health_runs(self, days: list[date]) -> list[dict[str, Any]]:
        return self._docs(HEALTH_RUNS, days)

    def persona_weeks(self, mondays: list[date]) -> list[dict[str, Any]]:
        return self._docs(HEALTH_PERSONAS, mondays)


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

    def customers(self) -> list[dict[str, Any]]:
        return [doc.to_dict() or {} for doc in self.client.collection(CUSTOMERS).stream()]

    def health_scores(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not doc_ids:
            return {}
        refs = [self.client.collection(HEALTH_SCORES).document(i) for i in doc_ids]
        return {snap.id: snap.to_dict() or {} for snap in self.client.get_all(refs) if snap.exists}

    def incidents_resolved(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = (
            self.client.collection(INCIDENTS)
            .where(filter=FieldFilter("resolved_at", ">=", start))
            .where(filter=FieldFilter("resolved_at", "<", end))
            .stream()
        )
        return [doc.to_dict() or {} for doc in docs]


class MemoryDocumentSource(_DocumentsById):
    """The same documents held in dicts by id (tests of the pure building code, the bench)."""

    def __init__(self, docs: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
        self.docs = docs or {}

    def _docs(self, collection: str, days: list[date]) -> list[dict[str, Any]]:
        held = self.docs.get(collection, {})
        return [held[d.isoformat()] for d in sorted(days) if d.isoformat() in held]

    def customers(self) -> list[dict[str, Any]]:
        return list(self.docs.get(CUSTOMERS, {}).values())

    def health_scores(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        held = self.docs.get(HEALTH_SCORES, {})
        return {i: held[i] for i in doc_ids if i in held}

    def incidents_resolved(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return [
            doc
            for doc in self.docs.get(INCIDENTS, {}).values()
            if isinstance(doc.get("resolved_at"), datetime) and start <= doc["resolved_at"] < end
        ]
