"""`make demo`'s traffic is what the stack accepts: its OTLP batches go through the real ingestion
entry point and read back through the query API as the persona service's three regions, and a
breach minute's P95 lands between the high and the critical latency thresholds."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from devtools.demo_traffic import REGIONS, breaching, daily_shape, otlp_batch
from tests.ingest_client import ingest_client


def test_breach_windows_and_daily_shape() -> None:
    assert not breaching(30, 8)
    assert breaching(61, 8)
    assert breaching(60 + 239, 8)
    assert not breaching(60 + 241, 8)
    assert breaching(60 + 8 * 60 + 1, 8)
    assert not breaching(120, 0)
    shapes = [daily_shape(s, 12) for s in range(0, 12 * 60, 10)]
    assert min(shapes) == 0.2
    assert max(shapes) > 0.95


def test_demo_batches_are_ingested_per_region(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    from shared.metrics.query import run_query
    from shared.metrics.query_model import MetricQuery

    client = ingest_client(emulators.project)
    rng = random.Random(1)
    end_ns = time.time_ns()
    for slow in (None, "europe-west1"):
        batch = otlp_batch(rng, 1.0, slow, end_ns - 5_000_000_000, end_ns)
        answer = client.post("/v1/metrics", data=batch, content_type="application/json")
        assert answer.status_code == 200, answer.data
        assert "rejected" not in answer.get_data(as_text=True) or answer.get_json().get("partialSuccess") in (
            None,
            {},
        )
    now = datetime.now(UTC)
    result = run_query(
        MetricQuery(
            metric="http.server.request.duration",
            agg="p95",
            start=now - timedelta(minutes=5),
            end=now + timedelta(minutes=1),
            labels={"service": "persona-router"},
            group_by=["region"],
        )
    )
    p95 = {s.labels["region"]: s.points[0][1] for s in result.series}
    assert set(p95) == set(REGIONS)
    assert p95["us-central1"] < 0.1
    # The slow export is half of Europe's requests: its P95 is over the high threshold, under critical.
    assert 0.1 < p95["europe-west1"] < 0.2


def test_the_demo_names_the_reports_outbox_the_function_writes_to(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from devtools.demo import ROOT, reports_outbox

    monkeypatch.delenv("ION_REPORTS_OUTBOX", raising=False)
    assert reports_outbox() == ROOT / "outbox" / "reports"
    monkeypatch.setenv("ION_REPORTS_OUTBOX", str(tmp_path))
    assert reports_outbox() == tmp_path
