"""Every customer counted by the daily run: 3,000 customers x 3 features shipped as routing ships
them, ingested by ``ingest_pubsub``, scored by ``POST /v1/health/run``. Customers whose usage
ingestion refused (a day document over its size, a value outside the catalogue) are
``usage_unknown`` with no usage-driven action, never scored as idle; the run summary counts them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.customer_traffic import THREE_FEATURES, push_to_ingest, routed_batches

pytestmark = pytest.mark.emulators
USAGE_ACTIONS = ("training_outreach", "retention_campaign", "education_campaign")


def _register(fs, ids: list[str], created_at: datetime) -> None:  # type: ignore[no-untyped-def]
    from functions.health.models import Customer

    batch, pending = fs.batch(), 0
    for cid in ids:
        customer = Customer(id=cid, name=cid, plan="pro", created_at=created_at)
        batch.set(fs.collection("customers").document(cid), customer.model_dump())
        pending += 1
        if pending == 400:
            batch.commit()
            batch, pending = fs.batch(), 0
    batch.commit()


def test_every_customer_is_counted_and_refused_usage_is_unknown(fs, health_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from functions.ingestion import known_series
    from functions.ingestion.settings import get_ingestion_settings

    monkeypatch.setenv("ION_METRICS_UPDATES_TOPIC", "")
    monkeypatch.setenv("ION_HEALTH_PUBLISH_ACTIONS", "false")
    # Day documents of 10,000 bytes and one writer shard: some customer shards fill up.
    monkeypatch.setenv("ION_METRICS_MAX_DOCUMENT_BYTES", "10000")
    monkeypatch.setenv("ION_METRICS_WRITE_SHARDS", "1")
    get_ingestion_settings.cache_clear()
    known_series.reset()
    now = datetime.now(UTC)
    ids = [f"customer-with-a-rather-long-name-{i:05d}" for i in range(3000)]
    _register(fs, ids, now - timedelta(days=40))
    push_to_ingest(routed_batches(ids))
    # 50 customers also send a feature the catalogue does not know: refused, marked.
    odd = ids[:50]
    push_to_ingest(routed_batches(odd, (("/v2/route", b'{"message": "hi"}', 200),)), first_id=100)
    from shared.customer_keys import CUSTOMER_REQUESTS_METRIC
    from tests.ingestion.otlp_builders import counter, request

    teleport = [(now, 1.0, {"customer": cid, "feature": "teleport", "outcome": "ok"}) for cid in odd]
    push_to_ingest(
        [request([counter(CUSTOMER_REQUESTS_METRIC, teleport)], service="routing").SerializeToString()],
        first_id=200,
    )

    today = now.date()
    answer = health_client.post(f"/v1/health/run?as_of={today + timedelta(days=1)}")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert summary["customers"] == 3000

    states: dict[str, dict[str, Any]] = {
        doc.id: (doc.to_dict() or {}).get("health") or {} for doc in fs.collection("customers").stream()
    }
    whole = sum(
        1
        for state in states.values()
        if state["category"] != "usage_unknown"
        and state["components"]["engagement"]["inputs"]["requests"] == len(THREE_FEATURES)
        and len(state["components"]["adoption"]["inputs"]["used"]) == len(THREE_FEATURES)
    )
    # Every customer is either counted whole or usage_unknown (before: two thirds scored idle).
    assert whole + summary["categories"].get("usage_unknown", 0) == 3000

    from shared.metrics.customer_usage import read_days

    days = read_days(today - timedelta(days=1), today + timedelta(days=1))
    refused = {cid for cid in ids if days.refused_of(cid)}
    assert set(odd) <= refused
    assert len(refused) > len(odd)  # the full documents refused some too
    assert summary["usage_unknown"] == len(refused) == summary["categories"]["usage_unknown"]
    assert set(summary["usage_unknown_customers"]) <= refused
    assert summary["usage_reads"] <= 56 * 32 + 1  # days x shards (+ the store's first day)

    for cid in ids:
        state = states[cid]
        adoption = state["components"]["adoption"]["inputs"]
        if cid in refused:
            assert state["category"] == "usage_unknown", cid
            assert not any((state["actions"].get(a) or {}).get("fired") for a in USAGE_ACTIONS), cid
        else:
            # Counted whole: one request of each feature yesterday, none of it lost.
            assert state["category"] != "usage_unknown", cid
            assert sorted(adoption["used"]) == sorted(("route_key", "recommend", "bulk")), cid
            assert state["components"]["engagement"]["inputs"]["requests"] == len(THREE_FEATURES), cid
