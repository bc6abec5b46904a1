"""The score API over the health function's HTTP entry point: the contract shapes of
POST /v1/health/run and GET /v1/health/customers/{id}, listing by category, personas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.health.conftest import make_customer

pytestmark = pytest.mark.emulators


def test_run_then_read_scores_in_the_contract_shape(health_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_HEALTH_PUBLISH_ACTIONS", "false")
    make_customer(health_client, "acme")
    assert health_client.get("/v1/health/customers/acme").status_code == 404  # not scored yet
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    run = health_client.post(f"/v1/health/run?as_of={tomorrow.isoformat()}")
    assert run.status_code == 200, run.get_json()
    summary = run.get_json()
    assert summary["customers"] == 1
    # The customer usage store (empty: never written), then, for the days before it, the three
    # rollup queries of the metric store; and the persona mix.
    assert summary["usage_queries"] == 5

    body = health_client.get("/v1/health/customers/acme").get_json()
    assert body["id"] == "acme"
    assert 0 <= body["score"] <= 100
    assert body["category"] in ("healthy", "at_risk", "churn_risk")
    for name, component in body["components"].items():
        assert set(component) >= {"score", "weight"}, name
    assert body["missing"] == ["api_health", "feedback", "tickets", "payment"]  # no traffic, no imports
    assert body["history"][0]["as_of"] == tomorrow.isoformat()
    assert set(body["actions"]) == {
        "onboarding_checkin",
        "training_outreach",
        "retention_campaign",
        "education_campaign",
    }
    listed = health_client.get(f"/v1/health/customers?category={body['category']}").get_json()
    assert [c["id"] for c in listed["customers"]] == ["acme"]
    other = "healthy" if body["category"] != "healthy" else "churn_risk"
    assert health_client.get(f"/v1/health/customers?category={other}").get_json()["customers"] == []
    personas = health_client.get("/v1/health/personas").get_json()
    assert personas["expected_mix"] == {"Lua": 0.23, "Elro": 0.27, "Riri": 0.25, "Nana": 0.25}


def test_bad_arguments_are_422(health_client) -> None:  # type: ignore[no-untyped-def]
    assert health_client.post("/v1/health/run?as_of=yesterday").status_code == 422
    assert health_client.post("/v1/health/run?as_of=2999-01-01").status_code == 422
    assert health_client.get("/v1/health/customers?category=great").status_code == 422
    assert health_client.get("/v1/health/personas?weeks=0").status_code == 422
    assert health_client.get("/v1/health/customers/NOPE").status_code == 404
    assert health_client.get("/v1/health/run").status_code == 405
