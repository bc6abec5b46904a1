"""Customers, keys and event imports over the health function's HTTP API, on the Firestore emulator."""

from __future__ import annotations

import pytest

from shared.customer_keys import KEYS_COLLECTION, hash_key, key_id_of, parse_key, signed_by, signing_secrets
from shared.settings import get_settings
from tests.health.conftest import make_customer

pytestmark = pytest.mark.emulators


def test_customer_create_is_idempotent_and_conflicts_on_other_details(health_client) -> None:  # type: ignore[no-untyped-def]
    created = health_client.post(
        "/v1/customers", json={"id": "acme", "name": "Acme", "contact": "csm@example.com"}
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["id"] == "acme"
    assert body["contact"]["email"] == "csm@example.com"
    again = health_client.post(
        "/v1/customers", json={"id": "acme", "name": "Acme", "contact": "csm@example.com"}
    )
    assert again.status_code == 200
    assert again.get_json()["created_at"] == body["created_at"]
    clash = health_client.post("/v1/customers", json={"id": "acme", "name": "Other"})
    assert clash.status_code == 409
    assert health_client.get("/v1/customers/acme").get_json()["name"] == "Acme"
    assert health_client.get("/v1/customers/nobody").status_code == 404


def test_bad_customer_bodies_are_4xx_naming_the_field(health_client) -> None:  # type: ignore[no-untyped-def]
    bad_id = health_client.post("/v1/customers", json={"id": "Has Spaces", "name": "x"})
    assert bad_id.status_code == 422
    assert bad_id.get_json()["errors"][0]["field"] == "id"
    bad_mail = health_client.post("/v1/customers", json={"id": "x", "name": "x", "contact": "nope"})
    assert bad_mail.status_code == 422
    assert health_client.post("/v1/customers", data="{", content_type="application/json").status_code == 400
    assert health_client.get("/v1/customers?category=thriving").status_code == 422
    assert health_client.get("/v1/customers?limit=0").status_code == 422
    assert health_client.put("/v1/customers").status_code == 405


def test_list_pages_in_id_order(health_client) -> None:  # type: ignore[no-untyped-def]
    for name in ("c3", "c1", "c2"):
        make_customer(health_client, name)
    first = health_client.get("/v1/customers?limit=2").get_json()
    assert [c["id"] for c in first["customers"]] == ["c1", "c2"]
    second = health_client.get(f"/v1/customers?limit=2&after={first['next']}").get_json()
    assert [c["id"] for c in second["customers"]] == ["c3"]
    assert second["next"] is None


def test_keys_are_shown_once_stored_as_hashes_and_revocable(health_client, fs) -> None:  # type: ignore[no-untyped-def]
    make_customer(health_client)
    issued = health_client.post("/v1/customers/acme/keys")
    assert issued.status_code == 201
    key = issued.get_json()
    assert key_id_of(key["api_key"]) == key["key_id"]
    # Signed: its tag is the HMAC of its key id under ION_CUSTOMER_KEY_SECRET (here the local default).
    presented = parse_key(key["api_key"])
    assert presented is not None
    assert signed_by(presented, signing_secrets("", get_settings().project))
    stored = fs.collection(KEYS_COLLECTION).document(key["key_id"]).get().to_dict()
    assert stored["key_hash"] == hash_key(key["api_key"])
    assert stored["signed"] is True
    assert key["api_key"] not in str(stored)
    listed = health_client.get("/v1/customers/acme/keys").get_json()["keys"]
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert listed[0]["signed"] is True
    assert "api_key" not in listed[0]
    revoked = health_client.delete(f"/v1/customers/acme/keys/{key['key_id']}")
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"]
    assert health_client.delete(f"/v1/customers/acme/keys/{key['key_id']}").get_json() == revoked.get_json()
    make_customer(health_client, "other")
    assert health_client.delete(f"/v1/customers/other/keys/{key['key_id']}").status_code == 404
    assert health_client.post("/v1/customers/ghost/keys").status_code == 404


def _ticket(event_id: str, status: str = "open", **extra: object) -> dict[str, object]:
    return {
        "type": "ticket",
        "event_id": event_id,
        "at": "2026-11-20T10:00:00Z",
        "ticket_id": "T-1",
        "status": status,
        **extra,
    }


def test_event_import_is_idempotent_by_event_id_and_never_overwrites(health_client, fs) -> None:  # type: ignore[no-untyped-def]
    make_customer(health_client)
    events = [
        _ticket("e1"),
        {
            "type": "payment",
            "event_id": "e2",
            "at": "2026-11-21T00:00:00Z",
            "invoice_id": "I-9",
            "status": "overdue",
            "days_late": 12,
        },
        {"type": "nps", "event_id": "e3", "at": "2026-11-22T00:00:00Z", "score": 9},
    ]
    first = health_client.post("/v1/customers/acme/events", json={"events": events})
    assert first.status_code == 201
    assert first.get_json()["created"] == 3
    redelivered = health_client.post("/v1/customers/acme/events", json={"events": events})
    assert redelivered.status_code == 200
    assert redelivered.get_json()["unchanged"] == 3
    changed = health_client.post(
        "/v1/customers/acme/events", json={"events": [_ticket("e1", "closed"), _ticket("e4", "closed")]}
    )
    assert changed.status_code == 409
    outcomes = {e["event_id"]: e["outcome"] for e in changed.get_json()["events"]}
    assert outcomes == {"e1": "conflict", "e4": "created"}
    assert fs.collection("customer_events").count().get()[0][0].value == 4

    from datetime import UTC, datetime

    from functions.health.customer_events import events_since

    stored = events_since(datetime(2026, 11, 1, tzinfo=UTC))["acme"]
    assert {e.event_id: getattr(e, "status", None) for e in stored}["e1"] == "open"


def test_bad_events_are_refused_whole(health_client, fs) -> None:  # type: ignore[no-untyped-def]
    make_customer(health_client)
    response = health_client.post(
        "/v1/customers/acme/events",
        json={"events": [_ticket("ok"), {"type": "refund", "event_id": "x", "at": "2026-11-20T00:00:00Z"}]},
    )
    assert response.status_code == 422
    naive = health_client.post(
        "/v1/customers/acme/events", json={"events": [_ticket("n", at="2026-11-20T10:00:00")]}
    )
    assert naive.status_code == 422
    assert fs.collection("customer_events").count().get()[0][0].value == 0
    assert (
        health_client.post("/v1/customers/ghost/events", json={"events": [_ticket("z")]}).status_code == 404
    )


def test_health_reads_firestore(health_client, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    # alerts_inbox: the alerts topic the health function publishes to exists (it is probed too).
    body = health_client.get("/health").get_json()
    assert body["status"] == "ok"
    assert body["checks"]["firestore"]["ok"] is True


def test_dates_are_answered_in_utc_whatever_zone_they_were_sent_in(health_client) -> None:  # type: ignore[no-untyped-def]
    """A date sent with an offset is the same instant in UTC in every answer: the create's, the
    read's and the update's (before, the create echoed +02:00 and every read said UTC)."""
    body = {"id": "zoned", "name": "Zoned", "created_at": "2026-01-05T09:00:00+02:00"}
    created = health_client.post("/v1/customers", json=body)
    assert created.status_code == 201
    read = health_client.get("/v1/customers/zoned").get_json()
    assert created.get_json()["created_at"] == read["created_at"] == "2026-01-05T07:00:00Z"
    assert health_client.post("/v1/customers", json=body).status_code == 200  # the same instant
    patched = health_client.patch("/v1/customers/zoned", json={"first_value_at": "2026-01-06T08:30:00-05:00"})
    assert patched.get_json()["first_value_at"] == "2026-01-06T13:30:00Z"
    assert health_client.get("/v1/customers/zoned").get_json()["first_value_at"] == "2026-01-06T13:30:00Z"
