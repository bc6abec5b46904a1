"""The tuning job's recommendations, one document per series: any number of series is stored and
read back whole (one document holding them all passed Firestore's 1 MiB at a few hundred series,
and every daily run failed from then on), a reader sees only the latest run, and a run's series
that stopped reporting are not shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.emulators


def _recommendation(rule: str, customer: str) -> dict[str, Any]:
    # About 1 KB, as a real one with its labels, quantiles and explanation.
    return {
        "metric": "http.server.request.duration",
        "rule": rule,
        "labels": {"customer": customer, "region": "us-central1", "service": "routing"},
        "op": ">",
        "window": "5m",
        "threshold": 0.42,
        "explanation": "x" * 850,
    }


def test_a_thousand_five_hundred_series_are_stored_and_read_back(fs: Any) -> None:
    import functions_framework

    from functions.alerts import recommendation_store
    from shared.clock import utcnow
    from shared.topology import ROOT

    now = utcnow()
    first = [_recommendation("latency", f"c{i:04d}") for i in range(1500)]
    recommendation_store.store(now, first)

    app = functions_framework.create_app("evaluate_alerts", str(ROOT / "main.py"), "http")
    client = app.test_client()
    answer = client.get("/v1/recommendations")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["generated_at"] == now.isoformat()
    assert sorted(r["labels"]["customer"] for r in body["recommendations"]) == sorted(
        r["labels"]["customer"] for r in first
    )

    # The next run: one series stopped reporting, one is new; only that run is shown.
    later = now + timedelta(days=1)
    second = [*first[1:], _recommendation("latency", "new-co")]
    recommendation_store.store(later, second)
    body = client.get("/v1/recommendations").get_json()
    assert body["generated_at"] == later.isoformat()
    customers = {r["labels"]["customer"] for r in body["recommendations"]}
    assert len(body["recommendations"]) == 1500
    assert "c0000" not in customers
    assert "new-co" in customers
