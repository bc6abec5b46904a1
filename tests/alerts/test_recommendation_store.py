"""The tuning job's recommendations, one document per series: any number of series is stored and
read back (one document holding them all passed Firestore's 1 MiB at a few hundred series, and
every daily run failed from then on), a page at a time by rule then labels (1,500 series were
~1.5 MB read and answered at once), a reader sees only the latest run, and a run's series that
stopped reporting are not shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.paging import pages_by_next

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


def _client() -> Any:
    import functions_framework

    from shared.topology import ROOT

    return functions_framework.create_app("evaluate_alerts", str(ROOT / "main.py"), "http").test_client()


def _every_page(client: Any, query: str) -> list[list[dict[str, Any]]]:
    return pages_by_next(client, "/v1/recommendations", query, "recommendations")


def test_a_thousand_five_hundred_series_are_stored_and_read_back(fs: Any, query_reads: list[int]) -> None:
    from functions.alerts import recommendation_store
    from shared.clock import utcnow

    now = utcnow()
    first = [_recommendation("latency", f"c{i:04d}") for i in range(1500)]
    recommendation_store.store(now, first)

    client = _client()
    query_reads[0] = 0
    answer = client.get("/v1/recommendations")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["generated_at"] == now.isoformat()
    assert query_reads[0] == 100  # the default page, never the run's 1,500 (before: all of them)
    assert [r["labels"]["customer"] for r in body["recommendations"]] == [f"c{i:04d}" for i in range(100)]
    assert body["next"] is not None

    query_reads[0] = 0
    pages = _every_page(client, "limit=500")
    assert [len(p) for p in pages] == [500, 500, 500, 0]  # a full last page: an empty one follows
    assert query_reads[0] == 1500
    assert [r["labels"]["customer"] for p in pages for r in p] == [r["labels"]["customer"] for r in first]

    # The next run: one series stopped reporting, one is new; only that run is shown.
    later = now + timedelta(days=1)
    second = [*first[1:], _recommendation("latency", "new-co")]
    recommendation_store.store(later, second)
    pages = _every_page(client, "limit=400")
    assert {client.get("/v1/recommendations?limit=1").get_json()["generated_at"]} == {later.isoformat()}
    customers = {r["labels"]["customer"] for p in pages for r in p}
    assert sum(len(p) for p in pages) == 1500
    assert "c0000" not in customers
    assert "new-co" in customers


def test_a_page_is_in_rule_then_labels_order_and_a_foreign_cursor_is_a_422(fs: Any) -> None:
    from functions.alerts import recommendation_store
    from shared.clock import utcnow

    stored = [
        _recommendation(rule, f"c{i}") for rule in ("saturation", "errors", "latency") for i in range(5)
    ]
    recommendation_store.store(utcnow(), stored)
    client = _client()
    pages = _every_page(client, "limit=4")
    assert [len(p) for p in pages] == [4, 4, 4, 3]
    listed = [r for p in pages for r in p]
    assert listed == sorted(stored, key=recommendation_store.series_order)

    answer = client.get("/v1/recommendations?after=" + "0" * 32)
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["field"] == "after"
    assert client.get("/v1/recommendations?limit=501").status_code == 422


def test_a_run_stored_before_the_order_fields_is_paged_by_series_id(fs: Any) -> None:
    from google.cloud.firestore import DELETE_FIELD

    from functions.alerts import recommendation_store
    from shared.clock import utcnow

    now = utcnow()
    stored = [_recommendation("latency", f"c{i}") for i in range(7)]
    recommendation_store.store(now, stored)
    latest = fs.collection(recommendation_store.RECOMMENDATIONS).document(recommendation_store.LATEST)
    latest.set({"generated_at": now.isoformat(), "run": now.isoformat(), "series": 7})  # no `ordered`
    for doc in latest.collection(recommendation_store.SERIES).stream():
        doc.reference.update({"rule": DELETE_FIELD, "labels_key": DELETE_FIELD})

    pages = _every_page(_client(), "limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [recommendation_store.series_id(r) for p in pages for r in p]
    assert ids == sorted(recommendation_store.series_id(r) for r in stored)
