"""Where scores, action states and persona weeks live: a port, Firestore and in-memory.

Firestore layout (besides the registry's collections)::

    customers/{id}.health            latest result, the one before it, action states: the run
                                     reads each customer once (the customers stream) and needs
                                     nothing else per customer
    health_scores/{id}:{as_of}       the daily result with fired actions, expire_at (400 days)
    health_personas/{week_start}     weekly satisfaction and drift tests
    health_drift/{against}           drift episode state (expected, baseline)
    health_runs/{as_of}              the run's summary
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from functions.health.models import Customer, Event
from shared.customer_keys import CUSTOMERS_COLLECTION

SCORES_COLLECTION = "health_scores"
PERSONAS_COLLECTION = "health_personas"
DRIFT_COLLECTION = "health_drift"
RUNS_COLLECTION = "health_runs"
SCORE_RETENTION = timedelta(days=400)
WRITES_PER_BATCH = 400


def score_doc_id(customer_id: str, as_of: date) -> str:
    return f"{customer_id}:{as_of.isoformat()}"


@dataclass
class Written:
    """One customer's outcome of a run: its daily record and its new ``health`` state (None: the
    day is behind the customer's latest score, which stays)."""

    customer_id: str
    as_of: date
    record: dict[str, Any]
    state: dict[str, Any] | None


class HealthStore(Protocol):
    reads: int

    def customers(self) -> list[tuple[Customer, dict[str, Any]]]: ...
    def events_since(self, since: datetime) -> dict[str, list[Event]]: ...
    def save(self, outcomes: Iterable[Written]) -> None: ...
    def history(self, customer_id: str, as_of: date, days: int) -> list[dict[str, Any]]: ...
    def get_doc(self, collection: str, doc_id: str) -> dict[str, Any] | None: ...
    def put_doc(self, collection: str, doc_id: str, data: dict[str, Any]) -> None: ...
    def get_docs(self, collection: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class FirestoreHealthStore:
    def __init__(self) -> None:
        self.reads = 0

    def customers(self) -> list[tuple[Customer, dict[str, Any]]]:
        from shared.firestore import get_firestore

        found = []
        for doc in get_firestore().collection(CUSTOMERS_COLLECTION).stream():
            self.reads += 1
            data = doc.to_dict() or {}
            found.append((Customer.model_validate(data), data.get("health") or {}))
        return found

    def events_since(self, since: datetime) -> dict[str, list[Event]]:
        from functions.health.customer_events import events_since

        events = events_since(since)
        self.reads += sum(len(v) for v in events.values())
        return events

    def save(self, outcomes: Iterable[Written]) -> None:
        from shared.firestore import get_firestore

        client = get_firestore()
        batch, pending = client.batch(), 0
        for outcome in outcomes:
            batch.set(
                client.collection(SCORES_COLLECTION).document(
                    score_doc_id(outcome.customer_id, outcome.as_of)
                ),
                outcome.record,
            )
            pending += 1
            if outcome.state is not None:
                batch.update(
                    client.collection(CUSTOMERS_COLLECTION).document(outcome.customer_id),
                    {"health": outcome.state},
                )
                pending += 1
            if pending >= WRITES_PER_BATCH:
                batch.commit()
                batch, pending = client.batch(), 0
        if pending:
            batch.commit()

    def history(self, customer_id: str, as_of: date, days: int) -> list[dict[str, Any]]:
        ids = [score_doc_id(customer_id, as_of - timedelta(days=i)) for i in range(days)]
        found = self.get_docs(SCORES_COLLECTION, ids)
        return [found[i] for i in ids if i in found]

    def get_doc(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        from shared.firestore import get_firestore

        snapshot = get_firestore().collection(collection).document(doc_id).get()
        self.reads += 1
        return snapshot.to_dict() if snapshot.exists else None

    def put_doc(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        from shared.firestore import get_firestore

        get_firestore().collection(collection).document(doc_id).set(data)

    def get_docs(self, collection: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        from shared.firestore import get_firestore

        client = get_firestore()
        refs = [client.collection(collection).document(i) for i in doc_ids]
        found = {}
        for snapshot in client.get_all(refs):
            self.reads += 1
            if snapshot.exists:
                found[snapshot.id] = snapshot.to_dict() or {}
        return found


@dataclass
class MemoryHealthStore:
    """The same in memory (tests of the run's logic, replays)."""

    customer_list: list[Customer] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict)
    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: int = 0

    def customers(self) -> list[tuple[Customer, dict[str, Any]]]:
        self.reads += len(self.customer_list)
        return [(c, self.states.get(c.id, {})) for c in self.customer_list]

    def events_since(self, since: datetime) -> dict[str, list[Event]]:
        return {k: [e for e in v if e.at >= since] for k, v in self.events.items()}

    def save(self, outcomes: Iterable[Written]) -> None:
        for outcome in outcomes:
            self.put_doc(SCORES_COLLECTION, score_doc_id(outcome.customer_id, outcome.as_of), outcome.record)
            if outcome.state is not None:
                self.states[outcome.customer_id] = outcome.state

    def history(self, customer_id: str, as_of: date, days: int) -> list[dict[str, Any]]:
        ids = [score_doc_id(customer_id, as_of - timedelta(days=i)) for i in range(days)]
        return [self.docs[SCORES_COLLECTION][i] for i in ids if i in self.docs.get(SCORES_COLLECTION, {})]

    def get_doc(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        return self.docs.get(collection, {}).get(doc_id)

    def put_doc(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        self.docs.setdefault(collection, {})[doc_id] = data

    def get_docs(self, collection: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: self.docs[collection][i] for i in doc_ids if i in self.docs.get(collection, {})}
