"""The cost function over HTTP (functions-framework, emulators): the API, its 4xx answers, budget
notifications redelivered and malformed ones dropped, and a missing billing source."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from devtools.bigquery_standin import StandIn, Table
from devtools.billing_export import ION_PROJECTS, generate
from shared.messages import AlertTransition
from tests.cost.helpers import TABLE, pull_all, subscribe

pytestmark = [pytest.mark.emulators, pytest.mark.usefixtures("fresh_cost_clients", "emulator_answers")]


def push(url: str, topic: str, data: bytes, attributes: dict[str, str], message_id: str) -> requests.Response:
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/ion-ops-test/subscriptions/budget-push",
    }
    return requests.post(f"{url}/projects/ion-ops-test/topics/{topic}", json=body, timeout=30)


BUDGET_ATTRS = {"billingAccountId": "0A1B2C-3D4E5F-6A7B8C", "budgetId": "b-123", "schemaVersion": "1.0"}


def budget_body(**extra: Any) -> bytes:
    now = datetime.now(UTC)
    body = {
        "budgetDisplayName": "ION monthly",
        "costAmount": 2712.5,
        "costIntervalStart": now.replace(day=1, hour=8, minute=0, second=0, microsecond=0).isoformat(),
        "budgetAmount": 3000.0,
        "budgetAmountType": "SPECIFIED_AMOUNT",
        "currencyCode": "USD",
        **extra,
    }
    return json.dumps(body).encode()


def test_http_api_and_budget_notifications(fs, emulators, serve_capability, bigquery: StandIn) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(ZoneInfo("America/Los_Angeles")).date()  # the billing account's day
    yesterday = today - timedelta(days=1)
    rows = generate(today - timedelta(days=70), yesterday, hours=24, seed=2, late_share=0.0, others=True).rows
    bigquery.table = Table(TABLE, rows)
    # Exports land up to 14 h after the usage ends: a day later, every row of yesterday is in,
    # whatever the hour this runs (in the first hours after Pacific midnight none of it is yet).
    bigquery.clock = lambda: datetime.now(UTC) + timedelta(days=1)
    subscription = subscribe("alerts")
    unreadable = subscribe("budget-notifications-dead-letter")
    live = serve_capability(
        "cost",
        {
            "ION_COST_BILLING_TABLE": TABLE,
            "ION_COST_BIGQUERY_ENDPOINT": bigquery.endpoint,  # type: ignore[attr-defined]
            "ION_COST_PROJECTS": ",".join(ION_PROJECTS),
        },
    )
    health = requests.get(f"{live.url}/health", timeout=60).json()
    assert health["source"]["name"] == "bigquery"
    assert health["checks"]["firestore"]["ok"] is True
    assert health["checks"]["prices"]["ok"] is True
    assert requests.get(f"{live.url}/v1/cost", timeout=30).status_code == 404

    answer = requests.post(f"{live.url}/", timeout=120)
    assert answer.status_code == 200, answer.text
    snap = answer.json()
    assert snap["as_of"] == yesterday.isoformat()
    assert snap["per_customer"]["customers"] is None

    got = requests.get(f"{live.url}/v1/cost", params={"days": 7}, timeout=30).json()
    assert got["snapshot"]["as_of"] == yesterday.isoformat()
    assert [d["date"] for d in got["series"]][-1] == yesterday.isoformat()
    assert len(got["series"]) == 7
    forecast = requests.get(f"{live.url}/v1/cost/forecast", timeout=30).json()
    assert forecast["forecast_month_end"]["low"] <= forecast["forecast_month_end"]["total"]
    assert requests.get(f"{live.url}/v1/cost/anomalies", timeout=30).json()["anomalies"] == []

    # A misspelt field is refused, not read as "no date" (which snapshotted yesterday).
    for bad in ({"date": "2026-02-30"}, {"date": today.isoformat()}, {"dte": yesterday.isoformat()}):
        problem = requests.post(f"{live.url}/v1/cost/snapshot", json=bad, timeout=30)
        assert problem.status_code == 422, problem.text
    assert requests.get(f"{live.url}/v1/cost", params={"days": "x"}, timeout=30).status_code == 422
    assert requests.get(f"{live.url}/v1/cost", params={"days": 401}, timeout=30).status_code == 422
    assert requests.get(f"{live.url}/v1/cost", params={"date": "soon"}, timeout=30).status_code == 422
    assert requests.delete(f"{live.url}/v1/cost", timeout=30).status_code == 405

    # Budget notifications: 90% actual, delivered twice, and again under a new message id.
    data = budget_body(alertThresholdExceeded=0.9)
    for message_id in ("m-1", "m-1", "m-2"):
        assert push(live.url, "budget-notifications", data, BUDGET_ATTRS, message_id).status_code < 300
    # Malformed ones are acknowledged, not retried forever, but never unread: each goes to the
    # dead-letter topic with the reason (the dead-letter store keeps it and pages).
    assert push(live.url, "budget-notifications", b"not json", BUDGET_ATTRS, "m-3").status_code < 300
    assert push(live.url, "budget-notifications", data, {"budgetId": "b-123"}, "m-4").status_code < 300
    letters = sorted(pull_all(unreadable), key=lambda m: m.data)
    assert [m.data for m in letters] == sorted([b"not json", data])
    assert all(m.attributes["recoverable"] == "false" and m.attributes["reason"] for m in letters)
    crossing = [
        AlertTransition.model_validate_json(m.data)
        for m in pull_all(subscription)
        if json.loads(m.data)["rule"] == "cost-budget-threshold"
        and json.loads(m.data)["labels"]["threshold"] == "actual-90"
    ]
    assert len(crossing) == 1
    assert crossing[0].severity == "medium"
    listed = requests.get(f"{live.url}/v1/cost/anomalies", timeout=30).json()["crossings"]
    assert any(c["threshold"] == "actual-90" and c["source"] == "budget b-123" for c in listed)


def test_missing_source_answers_503_and_deployed_needs_the_table(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("cost", {})
    health = requests.get(f"{live.url}/health", timeout=30)
    assert health.json()["source"]["name"] is None
    assert health.json()["checks"]["firestore"]["ok"] is True
    answer = requests.post(f"{live.url}/", timeout=30)
    assert answer.status_code == 503
    assert "ION_COST_BILLING_TABLE" in answer.json()["detail"]
    os.environ["K_SERVICE"] = "snapshot-cost"
    from functions.cost.settings import MissingSetting, get_cost_settings

    get_cost_settings.cache_clear()
    with pytest.raises(MissingSetting, match="ION_COST_BILLING_TABLE"):
        get_cost_settings()
    get_cost_settings.cache_clear()
