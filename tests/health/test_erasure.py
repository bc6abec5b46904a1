"""Erasure: after a customer's whole lifecycle (created, a key, events imported, its contact
changed, routed requests and feedback through routing, usage through ingestion, scored, success
actions through fan-out to its CSM), ``DELETE /v1/customers/{id}`` leaves nothing of it in any
Firestore collection of the emulator, which is scanned whole: a collection holding the customer
that the registry (``shared.customer_data``) does not list fails the test before the erasure does.
A retried erasure finishes one that failed half-way; the audit entry names no erased detail."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.audit import MARKER
from shared.customer_data import customer_collections
from shared.customer_keys import cache_key
from tests.customer_traffic import push_to_ingest, routed_batches
from tests.fanout.conftest import Fanout, pagerduty, slack, smtp  # noqa: F401 - fixtures of the rig
from tests.fanout.conftest import fanout as fanout  # noqa: PLC0414

pytestmark = pytest.mark.emulators

GONE = {"id": "gone-co", "name": "Gone Widgets Ltd", "email": "gone-csm@csm.example"}
KEPT = {"id": "kept-co", "name": "Kept Gadgets Ltd", "email": "kept-csm@csm.example"}


def _needles(customer: dict[str, str]) -> tuple[str, ...]:
    return (customer["id"], customer["name"], customer["email"], "gone-csm-new@csm.example")


def holding(client: Any, customer: dict[str, str]) -> dict[str, int]:
    """Every collection of the emulator with a document naming the customer (its id, name or
    contact, in the document id or anywhere in its fields): documents per collection."""
    needles = (
        _needles(customer) if customer is GONE else (customer["id"], customer["name"], customer["email"])
    )
    found: dict[str, int] = {}
    for database in client if isinstance(client, list) else [client]:
        for collection in database.collections():
            for snap in collection.stream():
                text = snap.id + json.dumps(snap.to_dict(), default=str)
                if any(needle in text for needle in needles):
                    found[collection.id] = found.get(collection.id, 0) + 1
    return found


def _audit(out: str) -> list[dict[str, Any]]:
    entries = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get(MARKER) is True:
            entries.append(entry)
    return entries


def _lifecycle(fanout: Fanout, health_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import functions_framework

    from functions.health.config import load_config
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import StoredUsage
    from functions.ingestion import known_series
    from functions.ingestion.settings import get_ingestion_settings
    from functions.routing.service import reset_service
    from shared.customer_keys import CUSTOMER_REQUESTS_METRIC
    from shared.topology import ROOT
    from tests.ingestion.otlp_builders import counter, request

    monkeypatch.setenv("ION_METRICS_UPDATES_TOPIC", "")
    monkeypatch.setenv("ION_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.setenv("ION_CACHE_WARM_ITEMS", "0")
    get_ingestion_settings.cache_clear()
    known_series.reset()
    clock = fanout.freeze()
    created = (clock.now() - timedelta(days=60)).isoformat()
    keys = {}
    for customer in (GONE, KEPT):
        body = {
            "id": customer["id"],
            "name": customer["name"],
            "contact": customer["email"],
            "created_at": created,
        }
        assert health_client.post("/v1/customers", json=body).status_code == 201
        issued = health_client.post(f"/v1/customers/{customer['id']}/keys")
        assert issued.status_code == 201
        keys[customer["id"]] = issued.get_json()["api_key"]
        events = [
            {"type": "nps", "event_id": "n1", "at": clock.now().isoformat(), "score": 3},
            {
                "type": "ticket",
                "event_id": "t1",
                "at": clock.now().isoformat(),
                "ticket_id": "T-1",
                "status": "open",
            },
        ]
        assert (
            health_client.post(f"/v1/customers/{customer['id']}/events", json={"events": events}).status_code
            == 201
        )
    # The CSM of the customer to erase changes (a second address to find and erase).
    patched = health_client.patch(
        f"/v1/customers/{GONE['id']}", json={"contact": {"email": "gone-csm-new@csm.example"}}
    )
    assert patched.status_code == 200

    # Routing: a routed request and feedback with a comment, under each customer's key.
    reset_service()
    route = functions_framework.create_app("route", str(ROOT / "main.py"), "http").test_client()
    for customer in (GONE, KEPT):
        headers = {"X-API-Key": keys[customer["id"]]}
        answer = route.post("/v2/route", json={"resonance_key": "anxious-burst-seek_advice"}, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        feedback = {
            "request_id": answer.get_json()["request_id"],
            "helpful": False,
            "comment": "slow",
            "user_id": "u1",
        }
        assert route.post("/v2/feedback", json=feedback, headers=headers).status_code == 201
    reset_service()

    # Usage through ingestion, then a run with its notices through fan-out to the CSMs.
    push_to_ingest(routed_batches([GONE["id"], KEPT["id"]]))
    today = clock.now().date()
    cfg = load_config(DEFAULT_CONFIG_FILE)

    def publish(notice: Any) -> None:
        assert fanout.push(notice) == 200

    summary = run_health(
        today + timedelta(days=1),
        cfg=cfg,
        usage_source=StoredUsage(),
        store=FirestoreHealthStore(),
        publish=publish,
        public_url="https://ops.example.com",
    )
    assert summary.actions_fired  # notices to erase in fan-out too
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    fanout.tick()
    assert fanout.smtp.mails
    # Usage refused for one day: the next run lists the customer as usage_unknown in its summary.
    teleport = [
        (clock.now(), 1.0, {"customer": c["id"], "feature": "teleport", "outcome": "ok"})
        for c in (GONE, KEPT)
    ]
    push_to_ingest(
        [request([counter(CUSTOMER_REQUESTS_METRIC, teleport)], service="routing").SerializeToString()],
        first_id=100,
    )
    later = run_health(
        today + timedelta(days=2),
        cfg=cfg,
        usage_source=StoredUsage(),
        store=FirestoreHealthStore(),
        publish=None,
    )
    assert GONE["id"] in later.usage_unknown_customers


def test_erasure_leaves_nothing_of_the_customer_in_any_collection(
    fanout: Fanout, health_client: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import redis

    _lifecycle(fanout, health_client, monkeypatch)
    registered = {entry.collection for entry in customer_collections()}
    before = holding(fanout_fs(), GONE)
    unlisted = sorted(set(before) - registered)
    assert not unlisted, f"collections holding a customer that shared.customer_data does not list: {unlisted}"
    # The lifecycle reached every kind of place the registry names (so the check is not vacuous).
    assert {
        "customers",
        "customer_keys",
        "customer_events",
        "health_scores",
        "health_runs",
        "routing_feedback",
        "customer_usage",
        "fanout_transitions",
        "fanout_alerts",
        "fanout_groups",
        "fanout_notifications",
    } <= set(before)
    kept_before = holding(fanout_fs(), KEPT)
    gone_key_id = next(
        k["key_id"] for k in health_client.get(f"/v1/customers/{GONE['id']}/keys").get_json()["keys"]
    )
    capsys.readouterr()

    erased = health_client.delete(
        f"/v1/customers/{GONE['id']}", headers={"X-Ion-Dev-Principal": "lead@example.com"}
    )
    assert erased.status_code == 200, erased.get_json()
    assert erased.get_json()["existed"] is True
    assert holding(fanout_fs(), GONE) == {}
    # Nobody else's data went with it.
    assert holding(fanout_fs(), KEPT) == kept_before
    assert redis.Redis.from_url(redis_url).get(cache_key(gone_key_id)) is None
    [entry] = [e for e in _audit(capsys.readouterr().out) if e["audit_action"] == "customer.erase"]
    assert entry["actor"] == "lead@example.com"
    assert entry["customer_id"] == GONE["id"]
    text = json.dumps(entry)
    assert GONE["name"] not in text
    assert "csm.example" not in text
    assert entry["removed"]["routing_feedback"] == 1

    again = health_client.delete(f"/v1/customers/{GONE['id']}")
    assert again.status_code == 200
    assert again.get_json()["existed"] is False
    assert set(again.get_json()["removed"].values()) == {0}
    assert health_client.get(f"/v1/customers/{GONE['id']}").status_code == 404


def test_a_retried_erasure_finishes_one_that_failed_half_way(
    fanout: Fanout, health_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.health import erasure

    _lifecycle(fanout, health_client, monkeypatch)
    real = erasure._sweep
    calls: list[str] = []

    def failing(entry: Any, customer_id: str) -> int:
        calls.append(entry.collection)
        if entry.collection == "fanout_transitions":
            raise RuntimeError("Firestore went away")  # the instance dies here
        return real(entry, customer_id)

    monkeypatch.setattr(erasure, "_sweep", failing)
    failed = health_client.delete(f"/v1/customers/{GONE['id']}")
    assert failed.status_code == 500
    left = holding(fanout_fs(), GONE)
    assert "customers" in left  # still there: the retry knows there is more to do
    assert health_client.get(f"/v1/customers/{GONE['id']}").get_json()["status"] == "inactive"
    monkeypatch.setattr(erasure, "_sweep", real)
    retried = health_client.delete(f"/v1/customers/{GONE['id']}")
    assert retried.status_code == 200
    assert retried.get_json()["existed"] is True
    assert holding(fanout_fs(), GONE) == {}


def fanout_fs() -> Any:
    """Every database of the emulator: the default one and the route's own."""
    from shared.firestore import get_firestore, get_route_firestore

    return [get_firestore(), get_route_firestore()]


def test_the_registry_names_each_owner_s_collection() -> None:
    from functions.fanout import records
    from functions.health.customer_events import EVENTS_COLLECTION
    from functions.health.store import RUNS_COLLECTION, SCORES_COLLECTION
    from functions.routing.feedback import FEEDBACK_COLLECTION
    from shared.customer_keys import CUSTOMERS_COLLECTION, KEYS_COLLECTION
    from shared.metrics.customer_usage import USAGE

    owned = {
        CUSTOMERS_COLLECTION,
        KEYS_COLLECTION,
        EVENTS_COLLECTION,
        SCORES_COLLECTION,
        RUNS_COLLECTION,
        FEEDBACK_COLLECTION,
        USAGE,
        records.TRANSITIONS,
        records.ALERTS,
        records.GROUPS,
        records.NOTIFICATIONS,
        records.SLACK_MESSAGES,
    }
    assert {entry.collection for entry in customer_collections()} == owned
    assert customer_collections()[-1].collection == CUSTOMERS_COLLECTION  # last, for retries
