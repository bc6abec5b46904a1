"""Where incidents are kept: the port (``IncidentStore``) with a Firestore implementation
(collection ``incidents``, document id = incident id; a resolved one expires after
``ION_INCIDENTS_KEEP_DAYS``) and a memory one for tests of what runs
above it. Every change runs the domain function inside a transaction on the one document, so two
acknowledgements at once (Slack and PagerDuty, a redelivered request) apply once: the second
reads the first's result and is a no-op saying who acknowledged first."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from functions.fanout.incident_policy import Priority
from functions.fanout.incident_record import OPEN_STATES, Change, Incident, State
from functions.fanout.settings import get_fanout_settings
from shared.clock import utcnow
from shared.paging import UnknownCursor, after_listed

INCIDENTS = "incidents"
Mutation = Callable[[Incident], Change]


class IncidentStore(Protocol):
    def get(self, incident_id: str) -> Incident | None: ...

    def list(
        self,
        *,
        state: State | None,
        priority: Priority | None,
        since: datetime | None,
        limit: int,
        after: str | None = None,
    ) -> Iterator[Incident]:
        """At most ``limit`` incidents, newest first (ties by id), those after the incident
        ``after`` (``UnknownCursor`` when the filters select none of that id), read lazily."""
        ...

    def change(self, incident_id: str, mutate: Mutation) -> tuple[Incident, Change] | None:
        """Apply ``mutate`` to the stored incident atomically; None when there is none."""
        ...

    def create(self, incident: Incident) -> tuple[Incident, bool]:
        """Store a new incident unless one has its id (returned instead, with False)."""
        ...

    def open_with_pagerduty_key(self, key: str) -> list[Incident]:
        """Incidents not resolved whose PagerDuty incident has this dedup_key (``holds_key``)."""
        ...

    def due_escalations(self, now: datetime) -> list[Incident]: ...

    def due_pagerduty_syncs(self, now: datetime) -> list[Incident]:
        """Incidents with a PagerDuty request whose next attempt is due (``pagerduty_sync_at``)."""
        ...


def incident_document(incident: Incident, keep: timedelta | None = None) -> dict[str, Any]:
    """The stored form: a resolved incident expires ``keep`` (``ION_INCIDENTS_KEEP_DAYS``) after it
    resolved; an open one (or one opened again) carries no expiry."""
    document = incident.to_document()
    if incident.state == "resolved" and incident.resolved_at is not None:
        if keep is None:
            keep = timedelta(days=get_fanout_settings().incidents_keep_days)
        document["expire_at"] = incident.resolved_at + keep
    return document


def holds_key(incident: Incident, key: str) -> bool:
    """PagerDuty's incident of ``key`` is this one's: its own key, or one of its alerts'
    fingerprints (the previous version's key per alert: an incident it opened, or a notification
    an instance of it delivered during the deploy)."""
    return key == incident.pagerduty_key or key in incident.fingerprints


def _matches(
    incident: Incident, state: State | None, priority: Priority | None, since: datetime | None
) -> bool:
    return (
        (state is None or incident.state == state)
        and (priority is None or incident.priority == priority)
        and (since is None or incident.opened_at >= since)
    )


class FirestoreIncidentStore:
    def _ref(self, incident_id: str) -> Any:
        from shared.firestore import get_firestore

        return get_firestore().collection(INCIDENTS).document(incident_id)

    def get(self, incident_id: str) -> Incident | None:
        snapshot = self._ref(incident_id).get()
        return Incident.model_validate(snapshot.to_dict()) if snapshot.exists else None

    def list(
        self,
        *,
        state: State | None,
        priority: Priority | None,
        since: datetime | None,
        limit: int,
        after: str | None = None,
    ) -> Iterator[Incident]:
        from google.cloud import firestore

        from functions.fanout.records import collection, field_filter

        # Resolved incidents are kept ION_INCIDENTS_KEEP_DAYS: whatever the filters, the query
        # reads the page asked for, newest first (composite indexes on state and on priority, each
        # then opened_at descending, in topology.yaml; Firestore merges them for both at once).
        query = collection(INCIDENTS)
        for field, value in (("state", state), ("priority", priority)):
            if value is not None:
                query = query.where(filter=field_filter(field, "==", value))
        if since is not None:
            query = query.where(filter=field_filter("opened_at", ">=", since))
        query = query.order_by("opened_at", direction=firestore.Query.DESCENDING)
        if after is not None:

            def listed(fields: dict[str, Any]) -> bool:
                opened_at = fields.get("opened_at")
                return (
                    isinstance(opened_at, datetime)
                    and state in (None, fields.get("state"))
                    and priority in (None, fields.get("priority"))
                    and (since is None or opened_at >= since)
                )

            # The cursor's fields the filters and the order need, not its timeline (up to ~1 MiB).
            fields = ["opened_at", "state", "priority"]
            query = after_listed(query, self._ref(after), listed, "incident these filters list", fields)
        # Lazily: a page of large incidents stops reading when its byte budget is spent.
        return (Incident.model_validate(s.to_dict()) for s in query.limit(limit).stream())

    def change(self, incident_id: str, mutate: Mutation) -> tuple[Incident, Change] | None:
        from google.cloud import firestore

        from shared.firestore import run_transaction

        ref = self._ref(incident_id)

        def run(tx: firestore.Transaction) -> tuple[Incident, Change] | None:
            snapshot = ref.get(transaction=tx)
            if not snapshot.exists:
                return None
            incident = Incident.model_validate(snapshot.to_dict())
            change = mutate(incident)
            if change.changed:
                incident.updated_at = utcnow()
                tx.set(ref, incident_document(incident))
            return incident, change

        return run_transaction(run)

    def create(self, incident: Incident) -> tuple[Incident, bool]:
        from google.cloud import firestore

        from shared.firestore import run_transaction

        ref = self._ref(incident.id)

        def run(tx: firestore.Transaction) -> tuple[Incident, bool]:
            snapshot = ref.get(transaction=tx)
            if snapshot.exists:
                return Incident.model_validate(snapshot.to_dict()), False
            tx.set(ref, incident_document(incident))
            return incident, True

        return run_transaction(run)

    def open_with_pagerduty_key(self, key: str) -> list[Incident]:
        from functions.fanout.records import collection, field_filter

        # The open incidents (a few: one per group firing), the key looked for among them. Not
        # every incident holding an alert: one that fires and resolves daily leaves an incident a
        # day for ION_INCIDENTS_KEEP_DAYS, and every PagerDuty webhook about it asks here. One
        # equality filter, which the automatic index serves (no index merge with array-contains).
        query = collection(INCIDENTS).where(filter=field_filter("state", "in", list(OPEN_STATES)))
        found = (Incident.model_validate(s.to_dict()) for s in query.stream())
        return [i for i in found if holds_key(i, key)]

    def due_escalations(self, now: datetime) -> list[Incident]:
        from functions.fanout.records import collection, field_filter

        query = collection(INCIDENTS).where(filter=field_filter("next_escalation_at", "<=", now))
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def due_pagerduty_syncs(self, now: datetime) -> list[Incident]:
        from functions.fanout.records import collection, field_filter

        query = collection(INCIDENTS).where(filter=field_filter("pagerduty_sync_at", "<=", now))
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]


class MemoryIncidentStore:
    """The same behaviour in a dict (one lock stands in for the transaction)."""

    def __init__(self) -> None:
        self._items: dict[str, Incident] = {}
        self._lock = threading.Lock()

    def get(self, incident_id: str) -> Incident | None:
        with self._lock:
            found = self._items.get(incident_id)
            return copy.deepcopy(found) if found else None

    def list(
        self,
        *,
        state: State | None,
        priority: Priority | None,
        since: datetime | None,
        limit: int,
        after: str | None = None,
    ) -> Iterator[Incident]:
        with self._lock:
            found = [copy.deepcopy(i) for i in self._items.values() if _matches(i, state, priority, since)]
        found.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
        if after is not None:
            ids = [i.id for i in found]
            if after not in ids:
                raise UnknownCursor(f"after={after} is no incident these filters list")
            found = found[ids.index(after) + 1 :]
        return iter(found[:limit])

    def change(self, incident_id: str, mutate: Mutation) -> tuple[Incident, Change] | None:
        with self._lock:
            stored = self._items.get(incident_id)
            if stored is None:
                return None
            incident = copy.deepcopy(stored)
            change = mutate(incident)
            if change.changed:
                incident.updated_at = utcnow()
                self._items[incident_id] = incident
            return copy.deepcopy(incident), change

    def create(self, incident: Incident) -> tuple[Incident, bool]:
        with self._lock:
            if incident.id in self._items:
                return copy.deepcopy(self._items[incident.id]), False
            self._items[incident.id] = copy.deepcopy(incident)
            return incident, True

    def open_with_pagerduty_key(self, key: str) -> list[Incident]:
        with self._lock:
            return [
                copy.deepcopy(i) for i in self._items.values() if holds_key(i, key) and i.state != "resolved"
            ]

    def due_escalations(self, now: datetime) -> list[Incident]:
        with self._lock:
            return [
                copy.deepcopy(i)
                for i in self._items.values()
                if i.next_escalation_at is not None and i.next_escalation_at <= now
            ]

    def due_pagerduty_syncs(self, now: datetime) -> list[Incident]:
        with self._lock:
            return [
                copy.deepcopy(i)
                for i in self._items.values()
                if i.pagerduty_sync_at is not None and i.pagerduty_sync_at <= now
            ]


_override: IncidentStore | None = None


def use_store(store: IncidentStore | None) -> None:
    """Tests: put a memory store in place (None: back to Firestore)."""
    global _override
    _override = store


@lru_cache(maxsize=1)
def _firestore_store() -> FirestoreIncidentStore:
    return FirestoreIncidentStore()


def get_store() -> IncidentStore:
    return _override or _firestore_store()
