"""What the cost API's day-bounded reads read at their maximum (``days=400``), in process with
the reads counted: the daily series reads one document a day asked for, never more (a day is one
document, ``cost_days/{date}``); the anomalies answer reads each announced event once (before,
each of its two lists read every event of both kinds: twice the events, half of them dropped)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import functions_framework
import pytest

from functions.cost.store import DAYS, EVENTS, SNAPSHOTS, event_id
from shared.clock import utcnow
from shared.topology import ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.usefixtures("fresh_cost_clients", "emulator_answers")]
SERVICES = ("Cloud Run", "Cloud Firestore", "Cloud Pub/Sub", "Cloud Memorystore for Redis", "Networking")


def _client() -> Any:
    return functions_framework.create_app("snapshot_cost", str(ROOT / "main.py"), "http").test_client()


def _write(fs: Any, collection: str, docs: dict[str, dict[str, Any]]) -> None:
    expire = utcnow() + timedelta(days=400)
    names = list(docs)
    for start in range(0, len(names), 400):
        batch = fs.batch()
        for name in names[start : start + 400]:
            batch.set(fs.collection(collection).document(name), {**docs[name], "expire_at": expire})
        batch.commit()


def test_the_series_reads_one_document_a_day_at_most_400(fs: Any, query_reads: list[int]) -> None:
    from functions.cost.main import get_cost_settings

    today = utcnow().astimezone(get_cost_settings().zone).date()
    last = today - timedelta(days=1)
    # 450 days kept (ION_COST_KEEP_DAYS may keep more than the 400 one answer shows).
    days = {
        (last - timedelta(days=n)).isoformat(): {
            "date": (last - timedelta(days=n)).isoformat(),
            "total": "50.00",
            "credits": "0",
            "by_service": dict.fromkeys(SERVICES, "10.00"),
            "by_sku": {name: {f"sku-{k}": "0.10" for k in range(100)} for name in SERVICES},
        }
        for n in range(450)
    }
    _write(fs, DAYS, days)
    _write(
        fs,
        SNAPSHOTS,
        {last.isoformat(): {"as_of": last.isoformat(), "snapshot": {"as_of": last.isoformat()}}},
    )

    client = _client()
    query_reads[0] = 0
    answer = client.get("/v1/cost?days=400")
    assert answer.status_code == 200, answer.get_json()
    assert query_reads[0] == 400 + 1  # the days asked for and the latest snapshot
    body = answer.get_json()
    assert len(body["series"]) == 400
    assert len(answer.get_data()) < 512 * 1024  # by service only: ~0.5 KB a day
    refused = client.get("/v1/cost?days=401")
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "days"


def test_the_anomalies_read_each_event_once(fs: Any, query_reads: list[int]) -> None:
    from functions.cost.main import get_cost_settings

    today = utcnow().astimezone(get_cost_settings().zone).date()
    events: dict[str, dict[str, Any]] = {}
    for n in range(500):  # a service a day for 500 days, 100 of them before the 400 asked for
        day = (today - timedelta(days=n + 1)).isoformat()
        service = SERVICES[n % len(SERVICES)]
        key = f"anomaly/{day}/{service}"
        events[event_id(key)] = {
            "kind": "anomaly",
            "date": day,
            "service": service,
            "key": key,
            "published": True,
        }
    for month in range(13):
        day = (today - timedelta(days=30 * month + 2)).isoformat()
        key = f"budget/{day[:7]}/b-1/actual-50"
        events[event_id(key)] = {"kind": "crossing", "date": day, "key": key, "published": True}
    _write(fs, EVENTS, events)

    query_reads[0] = 0
    body = _client().get("/v1/cost/anomalies?days=400").get_json()
    assert len(body["anomalies"]) == 400  # days 1..400 back: on or after `since` (today - 400)
    assert len(body["crossings"]) == 13
    assert query_reads[0] == 400 + 13  # before: every event of both kinds, for each of the two lists
    assert [a["date"] for a in body["anomalies"]] == sorted(a["date"] for a in body["anomalies"])
