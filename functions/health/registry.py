"""The customer registry in Firestore: customers and their API keys (hashes only); their
imported events are ``customer_events.py``'s. Knows nothing of HTTP.

::

    customers/{id}               id, name, plan, segment, contact, created_at, first_value_at,
                                 status (active / inactive), deactivated_at, updated_at,
                                 health (latest)
    customer_keys/{key_id}       customer_id, key_hash, created_at, revoked_at, signed
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from functions.health.models import (
    Customer,
    CustomerIn,
    CustomerPatch,
    CustomerStatus,
    KeyIssued,
    KeyView,
)
from functions.health.settings import get_health_settings
from shared.clock import utcnow
from shared.customer_keys import (
    CUSTOMERS_COLLECTION,
    KEYS_COLLECTION,
    CustomerKeyRecord,
    cache_key,
    hash_key,
    new_key,
)
from shared.firestore import get_firestore, run_transaction
from shared.logging import get_logger
from shared.paging import after_listed

log = get_logger("health.registry")
KEY_READ_PAGE = 500  # keys a whole-list read (deactivation revokes every key) asks for at once


class Conflict(Exception):
    """A write that would change what is stored under an id that must not change."""


def _customers() -> Any:
    return get_firestore().collection(CUSTOMERS_COLLECTION)


# Customers ---------------------------------------------------------------------------------------


def create_customer(body: CustomerIn) -> tuple[Customer, bool]:
    """Create the customer; the same body again returns the stored one (created False), a
    different body under an existing id raises :class:`Conflict`."""
    from google.cloud import firestore

    ref = _customers().document(body.id)

    def work(transaction: firestore.Transaction) -> tuple[Customer, bool]:
        snapshot = ref.get(transaction=transaction)
        if snapshot.exists:
            stored = Customer.model_validate(snapshot.to_dict())
            if same_customer(stored, body):
                return stored, False
            raise Conflict(f"customer {body.id} exists with other details")
        customer = Customer(**{**body.model_dump(), "created_at": body.created_at or utcnow()})
        transaction.set(ref, customer.model_dump(mode="python"))
        return customer, True

    return run_transaction(work)


def same_customer(stored: Customer, body: CustomerIn) -> bool:
    """Whether a create of ``body`` repeats the stored customer: the details it sends are the
    stored ones (dates left out of the body are whatever is stored)."""
    dates = {"created_at", "first_value_at"}
    compared = set(CustomerIn.model_fields) - (dates - body.model_fields_set)
    return stored.model_dump(include=compared) == body.model_dump(include=compared)


def get_customers(customer_ids: Iterable[str]) -> dict[str, Customer]:
    """The stored customers of these ids (one batched read)."""
    client = get_firestore()
    refs = [_customers().document(i) for i in dict.fromkeys(customer_ids)]
    if not refs:
        return {}
    return {snap.id: Customer.model_validate(snap.to_dict()) for snap in client.get_all(refs) if snap.exists}


def update_customer(customer_id: str, patch: CustomerPatch) -> tuple[Customer, Customer] | None:
    """Apply the fields of ``patch``; ``(before, after)``, or None if there is no such customer."""
    from google.cloud import firestore

    ref = _customers().document(customer_id)

    def work(transaction: firestore.Transaction) -> tuple[Customer, Customer] | None:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            return None
        before = Customer.model_validate(snapshot.to_dict())
        changes = patch.changes()
        after = Customer.model_validate({**before.model_dump(), **changes, "updated_at": utcnow()})
        if after.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"}):
            return before, before  # nothing changes: nothing written
        transaction.update(ref, {**changes, "updated_at": after.updated_at})
        return before, after

    return run_transaction(work)


def set_status(customer_id: str, status: CustomerStatus) -> tuple[Customer, bool] | None:
    """Deactivate or reactivate: ``(customer, changed)``, None if there is no such customer.
    Deactivating also revokes every key of the customer (see :func:`revoke_all_keys`)."""
    from google.cloud import firestore

    ref = _customers().document(customer_id)

    def work(transaction: firestore.Transaction) -> tuple[Customer, bool] | None:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            return None
        customer = Customer.model_validate(snapshot.to_dict())
        if customer.status == status:
            return customer, False
        now = utcnow()
        update = {
            "status": status,
            "updated_at": now,
            "deactivated_at": now if status == "inactive" else None,
        }
        transaction.update(ref, update)
        return customer.model_copy(update=update), True

    return run_transaction(work)


def revoke_all_keys(customer_id: str) -> list[str]:
    """Revoke every key of the customer not revoked yet (idempotent); the key ids revoked now."""
    revoked = []
    for key in list_keys(customer_id):
        if key.revoked_at is None and revoke_key(customer_id, key.key_id) is not None:
            revoked.append(key.key_id)
    return revoked


def get_customer(customer_id: str) -> Customer | None:
    snapshot = _customers().document(customer_id).get()
    return Customer.model_validate(snapshot.to_dict()) if snapshot.exists else None


def all_customers() -> list[Customer]:
    """Every customer (the daily run): one streamed query."""
    return [Customer.model_validate(doc.to_dict()) for doc in _customers().stream()]


# Keys --------------------------------------------------------------------------------------------


def issue_key(customer_id: str) -> KeyIssued:
    """A new key, signed under ``ION_CUSTOMER_KEY_SECRET`` (routing checks the tag before any
    lookup); also how a key issued before signing is replaced (then revoke the old one)."""
    key_id, api_key = new_key(get_health_settings().signing_secret())
    record = CustomerKeyRecord(
        key_id=key_id, customer_id=customer_id, key_hash=hash_key(api_key), created_at=utcnow(), signed=True
    )
    # create(): a key id collision (48 random bits) fails loudly instead of overwriting a key.
    get_firestore().collection(KEYS_COLLECTION).document(key_id).create(record.model_dump())
    log.info("customer key issued", extra={"customer_id": customer_id, "key_id": key_id})
    return KeyIssued(key_id=key_id, api_key=api_key, customer_id=customer_id, created_at=record.created_at)


def key_page(customer_id: str, limit: int, after: str | None = None) -> tuple[list[KeyView], str | None]:
    """At most ``limit`` of the customer's keys (revoked ones too: they are kept) issued after the
    key ``after``, oldest first (an index on customer then created_at in ``topology.yaml``), and
    the last one's id when the page is full (the next page's ``after``)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    keys = get_firestore().collection(KEYS_COLLECTION)
    query = keys.where(filter=FieldFilter("customer_id", "==", customer_id)).order_by("created_at")
    query = query.order_by("__name__")
    if after is not None:
        query = after_listed(
            query,
            keys.document(after),
            lambda fields: fields.get("customer_id") == customer_id,
            f"key of customer {customer_id}",
        )
    found = [KeyView.model_validate(doc.to_dict()) for doc in query.limit(limit).stream()]
    return found, found[-1].key_id if len(found) == limit else None


def list_keys(customer_id: str) -> list[KeyView]:
    """Every key of the customer, oldest first, read a page at a time."""
    found: list[KeyView] = []
    following: str | None = None
    while True:
        page, following = key_page(customer_id, KEY_READ_PAGE, following)
        found += page
        if following is None:
            return found


def revoke_key(customer_id: str, key_id: str) -> KeyView | None:
    """Mark the key revoked (idempotent) and drop routing's shared cache entry; None if the key
    is not this customer's."""
    from google.cloud import firestore

    ref = get_firestore().collection(KEYS_COLLECTION).document(key_id)

    def work(transaction: firestore.Transaction) -> KeyView | None:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            return None
        record = CustomerKeyRecord.model_validate(snapshot.to_dict())
        if record.customer_id != customer_id:
            return None
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": utcnow()})
            transaction.update(ref, {"revoked_at": record.revoked_at})
        return KeyView.model_validate(record.model_dump())

    view = run_transaction(work)
    if view is not None:
        _forget_cached_key(key_id)
        log.info("customer key revoked", extra={"customer_id": customer_id, "key_id": key_id})
    return view


def _forget_cached_key(key_id: str) -> None:
    """Routing instances cache key records in Redis too; deleting the entry bounds the time a
    revoked key still works by their in-process TTL alone."""
    from shared.redis import get_redis

    client = get_redis()
    if client is None:
        return
    try:
        client.delete(cache_key(key_id))
    except Exception as exc:  # noqa: BLE001 - the Redis entry expires on its own TTL anyway
        log.warning("could not drop the cached key record", extra={"key_id": key_id, "error": repr(exc)})
