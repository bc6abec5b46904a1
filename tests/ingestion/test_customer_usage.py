"""Every customer counted: routing's per-customer counters for thousands of customers, shipped
as routing ships them and delivered to ``ingest_pubsub``, are stored whole (no series cap drops a
customer), exactly once under redelivery; what is refused is marked against its customer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.json_format import MessageToDict

from shared.customer_keys import CUSTOMER_REQUESTS_METRIC
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery, QueryError
from tests.customer_traffic import THREE_COUNTERS, push_to_ingest, routed_batches
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import counter, request

pytestmark = pytest.mark.emulators
CUSTOMERS = [f"cust-{i:05d}" for i in range(3000)]


def _requests_by_customer(start: datetime, end: datetime, *by: str) -> dict[tuple[str, ...], float]:
    result = run_query(
        MetricQuery(
            metric=CUSTOMER_REQUESTS_METRIC, agg="sum", start=start, end=end, group_by=["customer", *by]
        )
    )
    return {tuple(s.labels[k] for k in ("customer", *by)): sum(v for _, v in s.points) for s in result.series}


def test_three_thousand_customers_are_all_counted_once(fs, topics, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """3,000 customers x 3 features = 9,000 label sets, past the 2,000 series a metric may have:
    before, two thirds of the customers were refused by the series limit and read back as idle."""
    monkeypatch.setenv("ION_METRICS_UPDATES_TOPIC", "")
    payloads = routed_batches(CUSTOMERS)
    assert len(payloads) >= 4  # several batches, as routing flushes at 2,000 series
    push_to_ingest(payloads)
    push_to_ingest(payloads)  # redelivered (same message ids)
    push_to_ingest(payloads, first_id=100)  # published twice (new message ids, same bytes)

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = (today - timedelta(days=1), today + timedelta(days=2))
    split = _requests_by_customer(*window, "feature", "outcome")
    per_customer: dict[str, dict[str, float]] = {}
    for (customer, feature, outcome), value in split.items():
        per_customer.setdefault(customer, {})[f"{feature}:{outcome}"] = value
    assert len(per_customer) == 3000
    assert all(counts == THREE_COUNTERS for counts in per_customer.values())

    from shared.metrics.customer_usage import CUSTOMER_SHARDS, read_days

    days = read_days(window[0].date(), window[1].date())
    assert not days.refused
    assert days.reads <= 3 * CUSTOMER_SHARDS * 4 + 1  # days x customer shards x writer shards (+ meta)


def test_refused_points_are_reported_and_marked_against_their_customer(client) -> None:  # type: ignore[no-untyped-def]
    from shared.metrics.customer_usage import read_days

    at = NOW - timedelta(minutes=5)
    points = [
        (at, 2.0, {"customer": "acme", "feature": "route_key", "outcome": "ok"}),
        (at, 1.0, {"customer": "bravo", "feature": "teleport", "outcome": "ok"}),  # not in the catalogue
        (NOW - timedelta(hours=3), 1.0, {"customer": "charlie", "feature": "bulk", "outcome": "ok"}),  # late
        (at, 1.0, {"customer": "Not An Id!", "feature": "bulk", "outcome": "ok"}),  # nobody's
        (at, 1.0, {"customer": "delta", "feature": "bulk", "outcome": "ok", "user": "u1"}),  # extra label
    ]
    as_json = json.dumps(
        MessageToDict(request([counter(CUSTOMER_REQUESTS_METRIC, points)], service="routing"))
    )
    answer = client.post("/v1/metrics", data=as_json, content_type="application/json")
    assert answer.status_code == 200
    payload = answer.get_json()
    assert payload["partialSuccess"]["rejectedDataPoints"] == 4
    reasons = " ".join(r["reason"] for r in payload["rejections"])
    for reason in ("teleport", "older than", "customer id", "user"):
        assert reason in reasons
    days = read_days(NOW.date() - timedelta(days=1), NOW.date() + timedelta(days=1))
    assert {c: sum(d.values()) for c, d in days.refused.items()} == {"bravo": 1, "charlie": 1, "delta": 1}
    assert days.refused["charlie"] == {(NOW - timedelta(hours=3)).date(): 1}
    assert {
        c: sum(sum(f.values()) for by in d.values() for f in by.values()) for c, d in days.counters.items()
    } == {"acme": 2}


def test_a_full_day_document_refuses_and_marks_the_customers_that_do_not_fit(fs, topics, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A day document is kept under ION_METRICS_MAX_DOCUMENT_BYTES: customers past it are refused
    (reported) and marked, never dropped silently; everyone else is counted."""
    from shared.metrics.customer_usage import read_days

    monkeypatch.setenv("ION_METRICS_UPDATES_TOPIC", "")
    monkeypatch.setenv("ION_METRICS_MAX_DOCUMENT_BYTES", "10000")
    monkeypatch.setenv("ION_METRICS_WRITE_SHARDS", "1")  # every batch into the same 32 documents
    long_ids = [f"customer-with-a-rather-long-name-{i:05d}" for i in range(3000)]
    push_to_ingest(routed_batches(long_ids))
    today = datetime.now(UTC).date()
    days = read_days(today - timedelta(days=1), today + timedelta(days=2))
    counted = {c for c, by in days.counters.items() if any(f.get("requests") for f in by.values())}
    refused = {c for c in long_ids if days.refused_of(c)}  # marked, or in a shard whose marks overflowed
    assert days.refused, "the 10,000-byte documents should not hold every customer"
    assert counted | refused == set(long_ids)


def test_customer_usage_queries_are_daily_sums(fs) -> None:  # type: ignore[no-untyped-def]
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    with pytest.raises(QueryError, match="daily counters"):
        run_query(MetricQuery(metric=CUSTOMER_REQUESTS_METRIC, agg="p95", start=start, end=end))
    with pytest.raises(QueryError, match="per day"):
        run_query(MetricQuery(metric=CUSTOMER_REQUESTS_METRIC, agg="sum", start=start, end=end, step=60))
    with pytest.raises(QueryError, match="summed away"):
        run_query(
            MetricQuery(metric=CUSTOMER_REQUESTS_METRIC, agg="sum", start=start, end=end, group_by=["region"])
        )


def test_days_before_the_store_existed_are_read_from_the_rollups(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Deployed over a metric store that held these counters as series: the days before the usage
    store's first day are read from the rollups, by the query API and by the health run alike."""
    from functions.health.usage import StoredUsage
    from shared.clock import FrozenClock, set_clock

    def post(at: datetime, value: float) -> None:
        labels = {"customer": "acme", "feature": "route_key", "outcome": "ok"}
        body = request([counter(CUSTOMER_REQUESTS_METRIC, [(at, value, labels)])], service="routing")
        answer = client.post(
            "/v1/metrics", data=body.SerializeToString(), content_type="application/x-protobuf"
        )
        assert answer.status_code == 200
        assert answer.data == b""  # nothing refused

    yesterday = NOW - timedelta(days=1)
    with monkeypatch.context() as before:  # ingestion as it was: no customer usage store
        before.setattr("functions.ingestion.customer_usage.customer_usage_metrics", dict)
        before.setattr("functions.ingestion.points.customer_usage_metrics", dict)
        set_clock(FrozenClock(yesterday))
        post(yesterday - timedelta(minutes=1), 5)
    set_clock(FrozenClock(NOW))
    post(NOW - timedelta(minutes=1), 2)

    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    result = run_query(
        MetricQuery(
            metric=CUSTOMER_REQUESTS_METRIC,
            agg="sum",
            start=midnight - timedelta(days=1),
            end=midnight + timedelta(days=1),
            step=86_400,
            group_by=["customer"],
        )
    )
    assert [(s.labels, [v for _, v in s.points]) for s in result.series] == [({"customer": "acme"}, [5, 2])]
    usage = StoredUsage().customers_usage(NOW.date() + timedelta(days=1), 28)["acme"]
    assert usage.daily == {yesterday.date(): 5, NOW.date(): 2}
    assert usage.features == {"route_key": 7}
