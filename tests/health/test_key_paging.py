"""GET /v1/customers/{id}/keys a page at a time, on the served health function (Firestore
emulator). Revoked keys are kept (their ids stay in the audit trail), so a customer that rotates
a key per deploy holds thousands after a few years. Before, every key the customer was ever
issued was read and answered at once; now a page reads its keys, oldest first, and says where
the next starts (``next``, passed as ``after``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.customer_keys import KEYS_COLLECTION, CustomerKeyRecord
from tests.health.conftest import make_customer
from tests.paging import pages_by_next

pytestmark = pytest.mark.emulators

ISSUED = 1200
START = datetime(2024, 1, 1, tzinfo=UTC)


def seed_keys(fs: Any, customer_id: str, count: int, *, first: int = 0) -> list[str]:
    """``count`` keys of the customer, one issued a day, every other one revoked; their ids, oldest first."""
    ids = []
    for start in range(0, count, 400):
        batch = fs.batch()
        for n in range(first + start, first + min(start + 400, count)):
            # Ids against issue order: a page must be in issue order, not id order.
            key_id = f"{(10**11 - n):012x}"
            created = START + timedelta(days=n)
            record = CustomerKeyRecord(
                key_id=key_id,
                customer_id=customer_id,
                key_hash="h" * 64,
                created_at=created,
                revoked_at=created + timedelta(days=1) if n % 2 else None,
                signed=True,
            )
            batch.set(fs.collection(KEYS_COLLECTION).document(key_id), record.model_dump())
            ids.append(key_id)
        batch.commit()
    return ids


def test_a_customers_keys_are_listed_page_by_page_reading_each_page_only(
    health_client: Any, fs: Any, query_reads: list[int]
) -> None:
    make_customer(health_client, "acme")
    make_customer(health_client, "other")
    issued = seed_keys(fs, "acme", ISSUED)
    theirs = seed_keys(fs, "other", 3, first=ISSUED)

    query_reads[0] = 0
    first = health_client.get("/v1/customers/acme/keys").get_json()
    assert query_reads[0] == 100  # the default page; before: all 1,200 keys
    assert [k["key_id"] for k in first["keys"]] == issued[:100]
    assert first["next"] == issued[99]

    query_reads[0] = 0
    pages = pages_by_next(health_client, "/v1/customers/acme/keys", "limit=500", "keys")
    assert [len(p) for p in pages] == [500, 500, 200]
    assert query_reads[0] == ISSUED
    assert [k["key_id"] for p in pages for k in p] == issued
    assert sum(k["revoked_at"] is not None for p in pages for k in p) == ISSUED // 2

    foreign = health_client.get(f"/v1/customers/acme/keys?after={theirs[0]}")
    assert foreign.status_code == 422
    assert foreign.get_json()["errors"][0]["field"] == "after"
    assert health_client.get("/v1/customers/acme/keys?limit=1001").status_code == 422
    assert health_client.get("/v1/customers/ghost/keys").status_code == 404


def test_deactivating_revokes_every_key_however_many(health_client: Any, fs: Any) -> None:
    """Deactivation reads the whole list (a page at a time now) and revokes what is left."""
    make_customer(health_client, "acme")
    issued = seed_keys(fs, "acme", 600)
    answer = health_client.post("/v1/customers/acme/deactivate").get_json()
    assert sorted(answer["keys_revoked"]) == sorted(issued[0::2])  # the others were revoked already
