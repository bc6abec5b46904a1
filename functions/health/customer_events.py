"""Imported ticket, payment and NPS events of customers, in Firestore: each stored once by its
event id, never overwritten with other content. Knows nothing of HTTP.

::

    customer_events/{hash}       customer_id, event_id, type, at, the event's fields, expire_at
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from functions.health.models import STORED, Event
from shared.firestore import get_firestore
from shared.logging import get_logger
from shared.validation import validation_errors

EVENTS_COLLECTION = "customer_events"
# Imported events are kept this long (Firestore TTL on expire_at); scoring looks back 180 days.
EVENT_RETENTION = timedelta(days=400)
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
log = get_logger("health.events")

Outcome = Literal["created", "unchanged", "conflict"]


def event_doc_id(customer_id: str, event_id: str) -> str:
    return hashlib.sha256(f"{customer_id}\x00{event_id}".encode()).hexdigest()[:40]


def _event_doc(customer_id: str, event: Event) -> dict[str, Any]:
    return {
        **event.model_dump(mode="python"),
        "customer_id": customer_id,
        "expire_at": event.at + EVENT_RETENTION,
    }


def _same(stored: dict[str, Any], event: Event) -> bool:
    try:
        return EVENT_ADAPTER.validate_python(_strip(stored), context={STORED: True}) == event
    except ValueError:
        return False


def _strip(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items() if k not in ("customer_id", "expire_at")}


def repeated_with_other_content(events: Iterable[Event]) -> list[str]:
    """Event ids a batch carries more than once with different content (which to keep is unknown)."""
    first: dict[str, Event] = {}
    clashing: list[str] = []
    for event in events:
        earlier = first.setdefault(event.event_id, event)
        if earlier != event and event.event_id not in clashing:
            clashing.append(event.event_id)
    return clashing


def stored_conflicts(customer_id: str, events: Iterable[Event]) -> list[str]:
    """Event ids of ``events`` stored before with other content (read only)."""
    client = get_firestore()
    collection = client.collection(EVENTS_COLLECTION)
    unique = {event.event_id: event for event in events}
    found: list[str] = []
    ids = list(unique)
    for start in range(0, len(ids), 300):
        refs = {collection.document(event_doc_id(customer_id, i)).id: i for i in ids[start : start + 300]}
        for snap in client.get_all([collection.document(doc) for doc in refs]):
            if snap.exists and not _same(snap.to_dict() or {}, unique[refs[snap.id]]):
                found.append(refs[snap.id])
    return found


def import_events(customer_id: str, events: Iterable[Event]) -> list[tuple[str, Outcome]]:
    """Store each event once: ``(event_id, outcome)`` in input order. An event id seen before
    with the same content is ``unchanged``; with other content, ``conflict`` (never overwritten).
    A batch repeating one event id counts its first occurrence."""
    from google.api_core.exceptions import AlreadyExists
    from google.api_core.exceptions import Conflict as GrpcConflict

    client = get_firestore()
    collection = client.collection(EVENTS_COLLECTION)
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    refs = {event_id: collection.document(event_doc_id(customer_id, event_id)) for event_id in unique}
    existing = {doc.id: doc.to_dict() for doc in client.get_all(list(refs.values())) if doc.exists}
    outcomes: dict[str, Outcome] = {}
    fresh: list[str] = []
    for event_id, event in unique.items():
        stored = existing.get(refs[event_id].id)
        if stored is None:
            fresh.append(event_id)
        else:
            outcomes[event_id] = "unchanged" if _same(stored, event) else "conflict"
    if fresh:
        batch = client.batch()
        for event_id in fresh:
            batch.create(refs[event_id], _event_doc(customer_id, unique[event_id]))
        try:
            batch.commit()
            outcomes.update(dict.fromkeys(fresh, "created"))
        except (AlreadyExists, GrpcConflict):
            # Another import raced us on one of them: the batch wrote nothing; one by one.
            for event_id in fresh:
                try:
                    refs[event_id].create(_event_doc(customer_id, unique[event_id]))
                    outcomes[event_id] = "created"
                except (AlreadyExists, GrpcConflict):
                    stored = refs[event_id].get().to_dict() or {}
                    outcomes[event_id] = "unchanged" if _same(stored, unique[event_id]) else "conflict"
    return [(event_id, outcomes[event_id]) for event_id in unique]


def events_since(since: datetime) -> dict[str, list[Event]]:
    """Every imported event at or after ``since``, by customer: one streamed query for all."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    found: dict[str, list[Event]] = defaultdict(list)
    docs = get_firestore().collection(EVENTS_COLLECTION).where(filter=FieldFilter("at", ">=", since)).stream()
    for doc in docs:
        data = doc.to_dict() or {}
        try:
            event = EVENT_ADAPTER.validate_python(_strip(data), context={STORED: True})
        except ValidationError as exc:
            # Imported by a newer version (a type or status this one does not know): scored
            # without it, said in the log, rather than no customer scored at all. Which fields
            # failed, never their values: an event may name a respondent or carry a comment.
            log.warning(
                "skipping a stored event this version cannot read",
                extra={"doc_id": doc.id, "type": data.get("type"), "errors": validation_errors(exc)[:5]},
            )
            continue
        found[data["customer_id"]].append(event)
    return dict(found)
