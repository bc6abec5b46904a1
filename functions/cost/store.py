"""Where the cost capability keeps its state: a port and two implementations (Firestore for
production, memory for replay and tests).

Collections (each document carries ``expire_at``, a Firestore TTL field; kept 400 days):

- ``cost_days/{YYYY-MM-DD}``: one usage day's (in ``time_zone``) net cost by service, SKU and
  region as exact decimal strings in ``currency`` (the account's ISO code; absent on days stored
  before 2026-12), its non-usage ``charges`` by cost type, with ``revision`` and ``restated_at``
  (a day is rewritten while its rows still land);
- ``cost_snapshots/{YYYY-MM-DD}``: the snapshot of that day as served by the API;
- ``cost_events/{hash}``: each announcement made once (a budget threshold crossed in a month, an
  anomaly of a service on a day), claimed in a transaction before it is published and marked
  published after, so a retried run publishes what a failed one did not, and nothing twice;
- ``cost_budget_notifications/{hash}``: the latest GCP Budget notification per budget and month;
- ``cost_estimates/{YYYY-MM-DD}``: the live estimate of that day (usage x list prices), partial
  while the day runs and whole once it is over, checked against the billed day when it lands.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from functions.cost.ledger import ZERO, DayCost

DAYS = "cost_days"
SNAPSHOTS = "cost_snapshots"
EVENTS = "cost_events"
BUDGET_NOTIFICATIONS = "cost_budget_notifications"
ESTIMATES = "cost_estimates"


def day_to_doc(cost: DayCost) -> dict[str, Any]:
    return {
        "date": cost.day.isoformat(),
        "total": str(cost.total),
        "gross": str(cost.gross),
        "credits": str(cost.credits),
        "rows": cost.rows,
        "by_service": {k: str(v) for k, v in cost.by_service.items()},
        "by_sku": {svc: {sku: str(v) for sku, v in skus.items()} for svc, skus in cost.by_sku.items()},
        "by_region": {k: str(v) for k, v in cost.by_region.items()},
        "gross_by_service": {k: str(v) for k, v in cost.gross_by_service.items()},
        "charges": {k: str(v) for k, v in cost.charges.items()},
    }


def day_from_doc(doc: dict[str, Any]) -> DayCost:
    cost = DayCost(date.fromisoformat(doc["date"]))
    cost.total = Decimal(doc["total"])
    cost.gross = Decimal(doc.get("gross", doc["total"]))
    cost.credits = Decimal(doc.get("credits", "0"))
    cost.rows = int(doc.get("rows", 0))
    cost.by_service = defaultdict(lambda: ZERO, {k: Decimal(v) for k, v in doc.get("by_service", {}).items()})
    by_sku: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for svc, skus in doc.get("by_sku", {}).items():
        for sku, value in skus.items():
            by_sku[svc][sku] = Decimal(value)
    cost.by_sku = by_sku
    cost.by_region = defaultdict(lambda: ZERO, {k: Decimal(v) for k, v in doc.get("by_region", {}).items()})
    for name in ("gross_by_service", "charges"):
        setattr(cost, name, defaultdict(lambda: ZERO, {k: Decimal(v) for k, v in doc.get(name, {}).items()}))
    return cost


def same_figures(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("total", "gross", "credits", "rows", "by_service", "by_sku", "by_region", "charges")
    # gross_by_service is new (2026-12): a day stored before it is not "changed" for lacking it.
    return all(a.get(k, {} if k == "charges" else None) == b.get(k) for k in keys)


def event_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class CostStore(Protocol):
    def days(self, first: date, last: date) -> dict[date, dict[str, Any]]: ...
    def put_day(self, doc: dict[str, Any]) -> None: ...
    def put_snapshot(self, as_of: date, doc: dict[str, Any]) -> None: ...
    def snapshot(self, as_of: date | None = None) -> dict[str, Any] | None: ...
    def claim_event(self, key: str, doc: dict[str, Any]) -> bool: ...
    def mark_published(self, key: str) -> None: ...
    def events(self, kind: str, since: date) -> list[dict[str, Any]]: ...
    def published_event(self, key: str) -> dict[str, Any] | None: ...
    def put_budget_notification(self, key: str, doc: dict[str, Any]) -> None: ...  # the newest kept
    def budget_notifications(self) -> list[dict[str, Any]]: ...
    def put_estimate(self, doc: dict[str, Any]) -> None: ...
    def estimates(self, first: date, last: date) -> dict[date, dict[str, Any]]: ...


class MemoryCostStore:
    def __init__(self) -> None:
        self.day_docs: dict[date, dict[str, Any]] = {}
        self.snapshots: dict[date, dict[str, Any]] = {}
        self.event_docs: dict[str, dict[str, Any]] = {}
        self.notifications: dict[str, dict[str, Any]] = {}
        self.estimate_docs: dict[date, dict[str, Any]] = {}

    def days(self, first: date, last: date) -> dict[date, dict[str, Any]]:
        return {d: doc for d, doc in sorted(self.day_docs.items()) if first <= d <= last}

    def put_day(self, doc: dict[str, Any]) -> None:
        self.day_docs[date.fromisoformat(doc["date"])] = dict(doc)

    def put_snapshot(self, as_of: date, doc: dict[str, Any]) -> None:
        self.snapshots[as_of] = doc

    def snapshot(self, as_of: date | None = None) -> dict[str, Any] | None:
        if as_of is None:
            return self.snapshots[max(self.snapshots)] if self.snapshots else None
        return self.snapshots.get(as_of)

    def claim_event(self, key: str, doc: dict[str, Any]) -> bool:
        current = self.event_docs.get(key)
        if current is None:
            self.event_docs[key] = {**doc, "key": key, "published": False}
            return True
        return not current["published"]

    def mark_published(self, key: str) -> None:
        self.event_docs[key]["published"] = True

    def events(self, kind: str, since: date) -> list[dict[str, Any]]:
        return sorted(
            (e for e in self.event_docs.values() if e["kind"] == kind and e["date"] >= since.isoformat()),
            key=lambda e: (e["date"], e["key"]),
        )

    def published_event(self, key: str) -> dict[str, Any] | None:
        doc = self.event_docs.get(key)
        return doc if doc is not None and doc.get("published") else None

    def put_budget_notification(self, key: str, doc: dict[str, Any]) -> None:
        if not _newer(doc, self.notifications.get(key)):
            return
        self.notifications[key] = doc

    def budget_notifications(self) -> list[dict[str, Any]]:
        return list(self.notifications.values())

    def put_estimate(self, doc: dict[str, Any]) -> None:
        self.estimate_docs[date.fromisoformat(doc["date"])] = dict(doc)

    def estimates(self, first: date, last: date) -> dict[date, dict[str, Any]]:
        return {d: doc for d, doc in sorted(self.estimate_docs.items()) if first <= d <= last}


class FirestoreCostStore:
    def __init__(self, client: Any = None, *, keep_days: int = 400, now: Any = None) -> None:
        from shared.clock import utcnow
        from shared.firestore import get_firestore

        self.client = client or get_firestore()
        self.keep = timedelta(days=keep_days)
        self.now = now or utcnow

    def _expire(self) -> datetime:
        return self.now() + self.keep

    def days(self, first: date, last: date) -> dict[date, dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self.client.collection(DAYS)
            .where(filter=FieldFilter("date", ">=", first.isoformat()))
            .where(filter=FieldFilter("date", "<=", last.isoformat()))
        )
        out = {}
        for snap in query.stream():
            doc = snap.to_dict()
            out[date.fromisoformat(doc["date"])] = doc
        return dict(sorted(out.items()))

    def put_day(self, doc: dict[str, Any]) -> None:
        self.client.collection(DAYS).document(doc["date"]).set({**doc, "expire_at": self._expire()})

    def put_snapshot(self, as_of: date, doc: dict[str, Any]) -> None:
        self.client.collection(SNAPSHOTS).document(as_of.isoformat()).set(
            {
                "as_of": as_of.isoformat(),
                "snapshot": doc,
                "stored_at": self.now(),
                "expire_at": self._expire(),
            }
        )

    def snapshot(self, as_of: date | None = None) -> dict[str, Any] | None:
        if as_of is not None:
            snap = self.client.collection(SNAPSHOTS).document(as_of.isoformat()).get()
            return snap.to_dict()["snapshot"] if snap.exists else None
        from google.cloud import firestore

        docs = list(
            self.client.collection(SNAPSHOTS)
            .order_by("as_of", direction=firestore.Query.DESCENDING)
            .limit(1)
            .stream()
        )
        return docs[0].to_dict()["snapshot"] if docs else None

    def claim_event(self, key: str, doc: dict[str, Any]) -> bool:
        from shared.firestore import run_transaction

        ref = self.client.collection(EVENTS).document(event_id(key))

        def claim(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if snap.exists:
                return not snap.to_dict().get("published", False)
            transaction.set(ref, {**doc, "key": key, "published": False, "expire_at": self._expire()})
            return True

        return run_transaction(claim, client=self.client)

    def mark_published(self, key: str) -> None:
        self.client.collection(EVENTS).document(event_id(key)).update(
            {"published": True, "published_at": self.now()}
        )

    def events(self, kind: str, since: date) -> list[dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        # The kind filtered here, not after reading: the anomalies answer asks for both kinds, and
        # each read every event of both (an index on kind then date in topology.yaml).
        query = (
            self.client.collection(EVENTS)
            .where(filter=FieldFilter("kind", "==", kind))
            .where(filter=FieldFilter("date", ">=", since.isoformat()))
        )
        return sorted((s.to_dict() for s in query.stream()), key=lambda e: (e["date"], e["key"]))

    def published_event(self, key: str) -> dict[str, Any] | None:
        snap = self.client.collection(EVENTS).document(event_id(key)).get()
        doc = snap.to_dict() if snap.exists else None
        return doc if doc is not None and doc.get("published") else None

    def put_budget_notification(self, key: str, doc: dict[str, Any]) -> None:
        from shared.firestore import run_transaction

        ref = self.client.collection(BUDGET_NOTIFICATIONS).document(event_id(key))

        def keep_newest(transaction: Any) -> None:
            snap = ref.get(transaction=transaction)
            if _newer(doc, snap.to_dict() if snap.exists else None):
                transaction.set(ref, {**doc, "expire_at": self._expire()})

        run_transaction(keep_newest, client=self.client)

    def budget_notifications(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.client.collection(BUDGET_NOTIFICATIONS).stream()]

    def put_estimate(self, doc: dict[str, Any]) -> None:
        self.client.collection(ESTIMATES).document(doc["date"]).set({**doc, "expire_at": self._expire()})

    def estimates(self, first: date, last: date) -> dict[date, dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self.client.collection(ESTIMATES)
            .where(filter=FieldFilter("date", ">=", first.isoformat()))
            .where(filter=FieldFilter("date", "<=", last.isoformat()))
        )
        out = {}
        for snap in query.stream():
            doc = snap.to_dict()
            doc.pop("expire_at", None)
            out[date.fromisoformat(doc["date"])] = doc
        return dict(sorted(out.items()))


def _newer(doc: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether a budget notification's figures replace the stored ones: Pub/Sub does not keep
    order, and one delivered late (its first delivery failed) must not undo a newer one."""
    if stored is None or stored.get("published_at") is None or doc.get("published_at") is None:
        return True
    return bool(doc["published_at"] >= stored["published_at"])
