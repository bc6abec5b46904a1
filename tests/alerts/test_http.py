"""evaluate_alerts over real HTTP under functions-framework, on the emulators."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.emulators


def test_api_lists_rules_and_alerts_and_rejects_bad_input(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("alerts")
    rules = requests.get(f"{live.url}/v1/rules", timeout=10).json()["rules"]
    assert {"latency-p95-high", "availability-slo-fast-burn"} <= {r["name"] for r in rules}
    assert requests.get(f"{live.url}/v1/alerts", timeout=10).json() == {"alerts": [], "next": None}
    bad = requests.get(f"{live.url}/v1/alerts?state=burning", timeout=10)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "state"
    unknown = requests.post(f"{live.url}/v1/evaluate", json={"rules": ["nope"]}, timeout=10)
    assert unknown.status_code == 422
    assert "nope" in unknown.json()["detail"]
    assert "latency-p95-high" in unknown.json()["allowed"]
    # A misspelt field is refused, not read as "every rule".
    misspelt = requests.post(f"{live.url}/v1/evaluate", json={"rule": ["latency-p95-high"]}, timeout=10)
    assert misspelt.status_code == 422
    assert misspelt.json()["errors"][0]["field"] == "rule"
    assert (
        requests.post(
            f"{live.url}/v1/evaluate", data="{", headers={"Content-Type": "application/json"}, timeout=10
        ).status_code
        == 400
    )
    assert requests.get(f"{live.url}/v1/recommendations", timeout=10).status_code == 404
    assert requests.delete(f"{live.url}/v1/rules", timeout=10).status_code == 405
    cycle = requests.post(f"{live.url}/", timeout=60)
    assert cycle.status_code == 200
    assert cycle.json()["rules"] == len(rules)
