"""Feedback answers hold user ids and comments: each expires (Firestore TTL on ``expire_at``, a
policy in topology.yaml that Terraform applies) and names the customer whose key sent it, so
erasing the customer finds it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.health import registry
from functions.health.models import CustomerIn
from functions.routing.feedback import FEEDBACK_COLLECTION, FEEDBACK_RETENTION
from shared.topology import load_topology
from tests.routing.test_feedback_experiment import routed

pytestmark = pytest.mark.emulators


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.setenv("ION_CACHE_WARM_ITEMS", "0")


def test_an_answer_expires_and_names_the_customer_whose_key_sent_it(fs, redis_url, make_client) -> None:  # type: ignore[no-untyped-def]
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    registry.create_customer(CustomerIn(id="acme", name="Acme"))
    key = registry.issue_key("acme").api_key
    client = make_client()
    keyed: dict[str, Any] = {"X-API-Key": key}
    mine = client.post("/v2/route", json={"resonance_key": "anxious-burst-seek_advice"}, headers=keyed)
    assert mine.status_code == 200
    request_id = mine.get_json()["request_id"]
    answer = {"request_id": request_id, "helpful": False, "comment": "too slow", "user_id": "u-42"}
    before = datetime.now(UTC)
    assert client.post("/v2/feedback", json=answer, headers=keyed).status_code == 201
    stored = route_db().collection(FEEDBACK_COLLECTION).document(request_id).get().to_dict()
    assert stored["customer_id"] == "acme"
    assert stored["user_id"] == "u-42"
    assert before + FEEDBACK_RETENTION - timedelta(minutes=5) <= stored["expire_at"]
    assert stored["expire_at"] <= datetime.now(UTC) + FEEDBACK_RETENTION
    # Anonymous (open API) feedback names no customer, and expires the same way.
    anonymous = routed(client)["request_id"]
    assert client.post("/v2/feedback", json={"request_id": anonymous, "helpful": True}).status_code == 201
    other = route_db().collection(FEEDBACK_COLLECTION).document(anonymous).get().to_dict()
    assert other["customer_id"] is None
    assert "expire_at" in other


def test_terraform_gets_the_feedback_ttl_policy() -> None:
    # terraform/main.tf makes a google_firestore_field TTL of every topology ttl_policies entry.
    policies = {(p.collection, p.field) for p in load_topology().ttl_policies}
    assert (FEEDBACK_COLLECTION, "expire_at") in policies


def test_answers_stored_before_expiry_are_given_one_by_the_backfill(fs) -> None:  # type: ignore[no-untyped-def]
    from functions.routing.feedback import backfill_expiry

    updated = datetime(2026, 6, 1, tzinfo=UTC)
    for number in range(5):  # as stored before this change: no expire_at
        route_db().collection(FEEDBACK_COLLECTION).document(f"r{number}").set(
            {"request_id": f"r{number}", "helpful": True, "comment": "ok", "updated_at": updated}
        )
    fresh = datetime(2026, 11, 1, tzinfo=UTC)
    route_db().collection(FEEDBACK_COLLECTION).document("new").set({"updated_at": fresh, "expire_at": fresh})
    assert backfill_expiry(page=2) == 5
    assert backfill_expiry(page=2) == 0
    for number in range(5):
        stored = route_db().collection(FEEDBACK_COLLECTION).document(f"r{number}").get().to_dict()
        assert stored["expire_at"] == updated + FEEDBACK_RETENTION
    assert route_db().collection(FEEDBACK_COLLECTION).document("new").get().to_dict()["expire_at"] == fresh


def route_db():  # type: ignore[no-untyped-def]
    """Feedback lives in the route's own database (``ION_ROUTE_DATABASE``)."""
    from shared.firestore import get_route_firestore

    return get_route_firestore()
