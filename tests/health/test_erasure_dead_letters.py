"""Erasure reaches the dead-letter store: a customer's success notice dead-lettered on ``alerts``,
its delivery given up on ``alert-deliveries`` (large: kept in parts) and a letter stored before the
store named its customers are redacted by ``DELETE /v1/customers/{id}``, counted in its answer;
on-call keeps that each existed (topic, times, channel), nobody else's letter changes, a redacted
letter is not re-driven, and a repeat finds nothing."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.emulators

GONE = {"id": "gone-co", "name": "Gone Widgets Ltd", "email": "gone-csm@csm.example"}
KEPT = {"id": "kept-co", "name": "Kept Gadgets Ltd", "email": "kept-csm@csm.example"}


def _notice(customer: dict[str, str]) -> dict[str, Any]:
    from shared.clock import utcnow
    from shared.notices import notice_transition

    return notice_transition(
        notice_id=f"health/{customer['id']}/retention_campaign/2026-12-07",
        source="health",
        name="retention-campaign",
        severity="low",
        summary=f"{customer['name']}: retention campaign",
        at=utcnow(),
        labels={"customer": customer["id"], "action": "retention_campaign"},
        annotations={"customer_name": customer["name"], "contact_email": customer["email"]},
    ).model_dump(mode="json")


def _store(message_id: str, topic: str, body: Any, attributes: dict[str, str] | None = None) -> Any:
    """A letter through the dead-letter store's own code, as ``store_dead_letters`` keeps it."""
    from functions.deadletters import letters, store
    from shared.clock import utcnow
    from shared.events import PubSubMessage

    at = utcnow() - timedelta(minutes=5)
    message = PubSubMessage(
        event_id=f"e{message_id}",
        message_id=message_id,
        topic=f"{topic}-dead-letter",
        publish_time=at,
        attributes={"CloudPubSubDeadLetterSourceDeliveryCount": "5", **(attributes or {})},
        data=body if isinstance(body, bytes) else json.dumps(body).encode(),
    )
    return store.store(letters.planned(letters.from_message(message, at)))


def _text(fs: Any, letter_id: str) -> str:
    """Everything kept of a letter: its fields, its data decoded, its parts."""
    doc = fs.collection("dead_letters").document(letter_id).get().to_dict() or {}
    data = base64.b64decode(doc.get("data_base64") or "")
    parts = [
        snap.to_dict()["data"]
        for snap in fs.collection("dead_letter_parts").stream()
        if snap.id.startswith(f"{letter_id}:")
    ]
    return json.dumps(doc, default=str) + data.decode() + b"".join(parts).decode(errors="replace")


def test_erasure_redacts_the_customer_s_dead_letters(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    import functions_framework
    from google.cloud import firestore

    from shared.topology import ROOT

    notice = _store("101", "alerts", _notice(GONE))
    assert notice.customers == [GONE["id"]]
    delivery = {
        "notification_id": "n-gone",
        "channel": "email",
        "reason": f"550 5.1.1 <{GONE['email']}>: recipient rejected",
        "notification": {
            "group_labels": {"customer": GONE["id"]},
            "alerts": [{**_notice(GONE), "padding": "x" * 800_000}],  # over one document: parts
        },
    }
    large = _store(
        "102",
        "alert-deliveries",
        delivery,
        {"channel": "email", "notification_id": "n-gone", "redrives": "1"},
    )
    large_parts = fs.collection("dead_letters").document(large.id).get().to_dict()["data_parts"]
    assert large_parts >= 1
    older = _store("103", "alerts", _notice(GONE))
    fs.collection("dead_letters").document(older.id).update({"customers": firestore.DELETE_FIELD})
    kept = _store("104", "alerts", _notice(KEPT))
    metrics = _store("105", "metrics", b"\x0a\x03otlp")
    kept_before = _text(fs, kept.id)
    for customer in (GONE, KEPT):
        body = {"id": customer["id"], "name": customer["name"], "contact": customer["email"]}
        assert health_client.post("/v1/customers", json=body).status_code == 201
    assert GONE["email"] in _text(fs, large.id)

    erased = health_client.delete(f"/v1/customers/{GONE['id']}")
    assert erased.status_code == 200, erased.get_json()
    removed = erased.get_json()["removed"]
    assert removed["dead_letters"] == 3
    assert removed["dead_letter_parts"] == large_parts
    for letter in (notice, large, older):
        text = _text(fs, letter.id)
        assert not [needle for needle in GONE.values() if needle in text], letter.id
        doc = fs.collection("dead_letters").document(letter.id).get().to_dict()
        # What on-call needs stays: that it existed, its topic, its times, how it failed.
        assert doc["topic"] == letter.topic
        assert doc["received_at"]
        assert doc["published_at"]
        assert doc["redacted_at"]
        assert doc["data_base64"] == ""
        assert doc["data_parts"] == 0
        assert "recover_after" not in doc
        assert doc["automatic"] is False
    assert fs.collection("dead_letters").document(large.id).get().to_dict()["attributes"] == {
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "channel": "email",
        "redrives": "1",
    }
    # Nobody else's letter changed.
    assert _text(fs, kept.id) == kept_before
    assert fs.collection("dead_letters").document(metrics.id).get().to_dict()["data_base64"]

    manage = functions_framework.create_app("manage_dead_letters", str(ROOT / "main.py"), "http")
    client = manage.test_client()
    assert client.get(f"/v1/dead-letters/{notice.id}").get_json()["redacted_at"]
    refused = client.post(f"/v1/dead-letters/{notice.id}/redrive")
    assert refused.status_code == 410
    assert "erased" in refused.get_json()["detail"]

    again = health_client.delete(f"/v1/customers/{GONE['id']}")
    assert again.status_code == 200
    assert again.get_json()["removed"]["dead_letters"] == 0
    assert again.get_json()["removed"]["dead_letter_parts"] == 0


def test_the_erasure_spells_the_dead_letter_store_s_names() -> None:
    from functions.deadletters import letters, store
    from functions.health import dead_letter_erasure

    assert dead_letter_erasure.DEAD_LETTERS == store.DEAD_LETTERS
    assert dead_letter_erasure.PARTS == store.PARTS
    assert dead_letter_erasure.CUSTOMERS_FIELD == letters.CUSTOMERS_FIELD
    assert "customers" in letters.DeadLetter.model_fields
    assert set(dead_letter_erasure.NOTICE_TOPICS) == {"alerts", "alert-deliveries"}


def test_the_scan_for_older_letters_stops_once_none_is_left(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    from google.cloud import firestore

    from functions.health.dead_letter_erasure import SCAN_DONE

    def older(message_id: str, customer: dict[str, str]) -> str:
        letter = _store(message_id, "alerts", _notice(customer))
        fs.collection("dead_letters").document(letter.id).update({"customers": firestore.DELETE_FIELD})
        return letter.id

    done = fs.collection(SCAN_DONE[0]).document(SCAN_DONE[1])
    gone_letter, kept_letter = older("201", GONE), older("202", KEPT)
    for customer in (GONE, KEPT):
        body = {"id": customer["id"], "name": customer["name"], "contact": customer["email"]}
        assert health_client.post("/v1/customers", json=body).status_code == 201

    # Another customer's older letter is left: the next erasure must scan again.
    assert health_client.delete(f"/v1/customers/{GONE['id']}").get_json()["removed"]["dead_letters"] == 1
    assert not done.get().exists
    assert fs.collection("dead_letters").document(kept_letter).get().to_dict()["redacted_at"] is None
    # The last older letter redacted: none is left, and later erasures skip the scan.
    assert health_client.delete(f"/v1/customers/{KEPT['id']}").get_json()["removed"]["dead_letters"] == 1
    assert done.get().to_dict()["found_none_at"]
    assert fs.collection("dead_letters").document(gone_letter).get().to_dict()["redacted_at"]

    # Proof of the skip: a letter without ``customers`` (none can be stored any more) is not read.
    late = {"id": "late-co", "name": "Late Ltd", "email": "late@csm.example"}
    body = {"id": late["id"], "name": late["name"], "contact": late["email"]}
    assert health_client.post("/v1/customers", json=body).status_code == 201
    unread = older("203", late)
    assert health_client.delete(f"/v1/customers/{late['id']}").get_json()["removed"]["dead_letters"] == 0
    assert fs.collection("dead_letters").document(unread).get().to_dict()["redacted_at"] is None
