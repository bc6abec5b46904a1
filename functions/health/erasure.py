"""Erasing a customer everywhere (``DELETE /v1/customers/{id}``), from the one list of collections
that hold customer data (``shared.customer_data``). Knows nothing of HTTP.

Order: the customer is marked ``inactive`` (no run scores it, no action fires), every key is
revoked (routing's Redis cache entry with it), the dead letters about it are redacted
(``dead_letter_erasure.py``), then each collection is swept, and the customer's own document goes
last. Every step is idempotent, so a retried erasure finishes what a failed one
began; while the customer's document exists, there may be something left. A sweep of a customer
already gone still runs (and finds nothing, or the stragglers: usage routing counted in the
seconds before a revocation reached its caches).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from functions.health import registry
from functions.health.dead_letter_erasure import DEAD_LETTERS, PARTS, redact_dead_letters
from shared.clock import utcnow
from shared.customer_data import CustomerCollection, customer_collections
from shared.firestore import get_firestore, get_route_firestore
from shared.logging import get_logger

PAGE = 300
log = get_logger("health.erasure")


def erase_customer(customer_id: str) -> tuple[bool, dict[str, int]]:
    """``(existed, removed)``: whether the customer's document was there, and per collection the
    documents deleted or entries removed now."""
    existed = registry.set_status(customer_id, "inactive") is not None
    registry.revoke_all_keys(customer_id)
    removed: dict[str, int] = {}
    removed[DEAD_LETTERS], removed[PARTS] = redact_dead_letters(customer_id)
    for entry in customer_collections():
        removed[entry.collection] = _sweep(entry, customer_id)
    log.info(
        "customer erased",
        extra={"customer_id": customer_id, "existed": existed, "removed": removed},
    )
    return existed, removed


def _database(entry: CustomerCollection) -> Any:
    return get_route_firestore() if entry.database == "route" else get_firestore()


def _sweep(entry: CustomerCollection, customer_id: str) -> int:
    client = _database(entry)
    if entry.finder == "document_id":
        ref = client.collection(entry.collection).document(customer_id)
        if not ref.get().exists:
            return 0
        ref.delete()
        return 1
    if entry.finder == "field":
        return sum(_delete_where(client, entry.collection, field, customer_id) for field in entry.fields)
    if entry.finder == "array":
        return sum(
            _remove_from_arrays(client, entry.collection, field, customer_id) for field in entry.fields
        )
    return _remove_usage(client, entry, customer_id)


def _delete_where(client: Any, collection: str, field: str, customer_id: str) -> int:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = client.collection(collection).where(filter=FieldFilter(field, "==", customer_id))
    return _in_pages(client, query, lambda batch, ref: batch.delete(ref))


def _remove_from_arrays(client: Any, collection: str, field: str, customer_id: str) -> int:
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = client.collection(collection).where(filter=FieldFilter(field, "array_contains", customer_id))
    return _in_pages(
        client, query, lambda batch, ref: batch.update(ref, {field: firestore.ArrayRemove([customer_id])})
    )


def _in_pages(client: Any, query: Any, change: Callable[[Any, Any], Any]) -> int:
    """``change`` every document ``query`` matches, a page per batch, until none matches (each
    change takes the document out of the query): the documents changed."""
    changed = 0
    while True:
        refs = [snap.reference for snap in query.limit(PAGE).stream()]
        if not refs:
            return changed
        batch = client.batch()
        for ref in refs:
            change(batch, ref)
        batch.commit()
        changed += len(refs)


def _remove_usage(client: Any, entry: CustomerCollection, customer_id: str) -> int:
    """The customer's entries in the usage store's day documents of its shard, over the store's
    retention (one id-range query per day: a day's documents of one shard, whatever the writers)."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.field_path import FieldPath

    from shared.metrics.customer_usage import RETENTION, USAGE, customer_shard, doc_id

    collection = client.collection(USAGE if entry.collection == USAGE else entry.collection)
    shard = customer_shard(customer_id)
    today = utcnow().date()
    removed = 0
    day = today - RETENTION - timedelta(days=2)
    while day <= today + timedelta(days=1):
        prefix = doc_id(day, shard, 0)[:-1]  # "<yyyymmdd>-<shard>-": every writer shard of it
        query = (
            collection.order_by("__name__")
            .start_at({"__name__": collection.document(prefix)})
            .end_at({"__name__": collection.document(prefix + "\uf8ff")})
        )
        for snap in query.stream():
            data: dict[str, Any] = snap.to_dict() or {}
            present = [field for field in entry.fields if customer_id in (data.get(field) or {})]
            if present:
                paths = {
                    FieldPath(field, customer_id).to_api_repr(): firestore.DELETE_FIELD for field in present
                }
                snap.reference.update(paths)
                removed += 1
        day += timedelta(days=1)
    return removed
