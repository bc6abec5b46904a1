"""Recording rules on the Firestore emulator: the downsampler writes each rule's hours with the
hour rollups, recomputed (never added), before the watermark moves; queries a rule answers read
its hours and give the same answers as the stored series (counts and sums to float rounding,
percentiles from the same merged buckets); hours folded before a rule existed are read raw until
backfilled; an hour too large for one document is read raw."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from devtools.metric_history import MetricHistory
from functions.ingestion import downsample as ds
from functions.ingestion import rule_hours as rh
from functions.ingestion.aggregate import Batch
from functions.ingestion.series_registry import register_series
from functions.ingestion.write_units import shard_of
from functions.ingestion.writer import store_batch
from shared.clock import get_clock
from shared.firestore import get_firestore
from shared.metrics import recording
from shared.metrics.build_reads import rollup_reads
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery, QueryResult
from shared.metrics.recording import RULE_HOURS, RULE_TAIL, raw_reads, rules_of
from shared.metrics.stamps import (
    MINUTE_STAMPS,
    STAMPS_MAP,
    minute_stamps,
)
from shared.metrics.store import (
    FOLDS,
    MINUTES,
    WRITE_STAMP,
    metric_id,
    metric_ref,
    minutes_stamp,
    stamp_floor,
)
from tests.ingestion.queried import queried

pytestmark = pytest.mark.emulators

HTTP = "http.server.request.duration"
CACHE = "ion.cache.requests"
H06 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # NOW is 12:00:30
H12 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
AFTER = datetime(2026, 3, 2, 14, 6, tzinfo=UTC)  # hours before 12:00 are foldable
REGIONS = {"us-central1": 0.02, "europe-west1": 0.03, "asia-southeast1": 0.04}
ROUTES = ["/v2/route", "/v2/feedback", "/health"]
STATUSES = {"200": 1.0, "422": 0.5, "503": 8.0}


def write_traffic(start: datetime, end: datetime) -> None:
    """Every 5 minutes: regions x routes x statuses of the request histogram (5xx with
    error.type), uneven weights; cache lookups by tier and result; the four personas' decisions."""
    history = MetricHistory()
    minute = start
    index = 0
    while minute < end:
        for r, (region, latency) in enumerate(REGIONS.items()):
            for k, route in enumerate(ROUTES):
                for status, slow in STATUSES.items():
                    labels = {"service": "routing", "region": region, "http.route": route}
                    labels["http.response.status_code"] = status
                    if status.startswith("5"):
                        labels["error.type"] = status
                    values = [latency * slow * (1 + 0.1 * k), latency * slow * (2 + index % 7)]
                    history.observe_weighted(HTTP, labels, minute, values, 3.7 + r + k + index % 5)
            for tier, result, n in (
                ("l1", "hit", 64),
                ("l1", "miss", 36),
                ("l2", "hit", 32),
                ("l2", "miss", 4),
            ):
                labels = {
                    "service": "routing",
                    "region": region,
                    "endpoint": "route",
                    "tier": tier,
                    "result": result,
                }
                history.increment(CACHE, labels, minute, n + index % 3)
        history.maybe_flush()
        minute += timedelta(minutes=5)
        index += 1
    history.flush()


def query(metric: str, agg: str, **kw) -> QueryResult:  # type: ignore[no-untyped-def]
    return run_query(
        MetricQuery(
            metric=metric,
            agg=agg,
            start=kw.pop("start", H06),
            end=kw.pop("end", H12),
            step=kw.pop("step", 3600),
            resolution="hour",
            **kw,
        )
    )


QUERIES = [
    (HTTP, "count", {"group_by": ["error.type", "http.response.status_code"]}),
    (HTTP, "count", {"group_by": ["http.route"]}),
    (HTTP, "count", {"group_by": ["http.response.status_code"], "step": None}),
    (HTTP, "rate", {"group_by": ["region"]}),
    (HTTP, "avg", {}),
    (HTTP, "max", {"labels": {"region": "europe-west1"}}),
    (HTTP, "p95", {}),
    (HTTP, "p50", {"group_by": ["region"], "step": None}),
    (HTTP, "p99", {"labels": {"region": "asia-southeast1"}, "group_by": ["http.route"]}),
    (CACHE, "sum", {"group_by": ["result", "tier"]}),
    (CACHE, "rate", {"labels": {"result": "miss"}, "group_by": ["tier"]}),
]


def answers(results: list[QueryResult]) -> list[dict[tuple, float]]:
    return [
        {(tuple(sorted(s.labels.items())), at): value for s in r.series for at, value in s.points}
        for r in results
    ]


def assert_same(recorded: list[QueryResult], raw: list[QueryResult]) -> None:
    for (metric, agg, kw), got, want in zip(QUERIES, answers(recorded), answers(raw), strict=True):
        assert got.keys() == want.keys(), (metric, agg, kw)
        assert want, (metric, agg, kw)
        for key, value in want.items():
            # Same merged numbers, added in another order: equal to float rounding.
            assert got[key] == pytest.approx(value, rel=1e-9), (metric, agg, kw, key)


def ask_all() -> tuple[list[QueryResult], set[str]]:
    """Every query of QUERIES inside one build's reads, and the kinds of ranges read."""
    with rollup_reads() as reads:
        results = [query(metric, agg, **dict(kw)) for metric, agg, kw in QUERIES]
        kinds = {key[1].split(":")[0] for key, _ in reads._docs}
    return results, kinds


def ask_raw() -> list[QueryResult]:
    with raw_reads():
        return [query(metric, agg, **dict(kw)) for metric, agg, kw in QUERIES]


def fold_state(metric: str) -> dict:
    return get_firestore().collection(FOLDS).document(metric_id(metric)).get().to_dict()


def rule_docs(metric: str) -> list[dict]:
    return [d.to_dict() for d in metric_ref(metric).collection(RULE_HOURS).stream()]


def test_rule_hours_are_written_with_the_fold_and_answer_as_the_stored_series(store) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, H12 + timedelta(minutes=30))
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    result = ds.downsample()
    assert result.complete
    http_rules, cache_rules = rules_of(HTTP), rules_of(CACHE)
    # One document per rule and hour with data: hours 06..11.
    assert result.rule_hours_written == 6 * (len(http_rules) + len(cache_rules))
    docs = rule_docs(HTTP)
    assert len(docs) == 6 * len(http_rules)
    by_region = next(r for r in http_rules if r.by == ("region",))
    region_docs = [d for d in docs if d["rule"] == by_region.id]
    assert sorted(d["t"] for d in region_docs) == [H06 + timedelta(hours=h) for h in range(6)]
    for doc in region_docs:
        # 27 stored series per region merged into one, labelled by region only.
        assert sorted(s["labels"]["region"] for s in doc["series"].values()) == sorted(REGIONS)
        assert doc["expire_at"] == doc["t"] + timedelta(days=90)
    state = fold_state(HTTP)
    assert state["folded_until"] == H12
    # Complete from the pass's first hour (the metric's first pass starts before the traffic).
    assert set(state["rules"]) == {r.id for r in http_rules}
    assert all(at <= H06 for at in state["rules"].values())

    recorded, kinds = ask_all()
    assert kinds == {"rule"}  # every query answered from a rule's hours, none from the rollups
    raw = ask_raw()
    assert_same(recorded, raw)
    # Raw really is the other path: it read the hour rollups.
    with rollup_reads() as reads, raw_reads():
        query(HTTP, "p95")
        assert {key[1] for key, _ in reads._docs} == {"hour"}

    # Recomputed, never added: refolding the range writes the same documents.
    before = {(d["rule"], d["t"]): d for d in docs}
    rerun = rh.record_rule_hours(metric_id(HTTP), http_rules, H06, H12)
    assert len(rerun) == len(before)
    for _, body in rerun:
        stored = before[(body["rule"], body["t"])]
        assert body["series"] == stored["series"]
        assert body["sk"] == stored["sk"]
    # A second run has nothing to fold and writes no rule hour.
    again = ds.downsample()
    assert (again.hours_written, again.rule_hours_written) == (0, 0)
    assert answers(ask_all()[0]) == answers(recorded)


def test_a_query_no_rule_answers_reads_the_stored_series(store) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, H06 + timedelta(hours=2))
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    with rollup_reads() as reads:
        # No rule keeps http.request.method, and `across` combines stored series.
        query(HTTP, "count", group_by=["http.request.method"])
        query(HTTP, "avg", across="sum", group_by=["region"])
        assert {key[1] for key, _ in reads._docs} == {"hour"}


def test_hours_folded_before_the_rules_are_read_raw_until_backfilled(client, store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, H12 + timedelta(hours=1, minutes=30))
    # Folded by a downsampler that knew no rule.
    for module in (ds, rh):
        monkeypatch.setattr(module, "rules_of", lambda metric: [])
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    assert rule_docs(HTTP) == []
    assert not fold_state(HTTP)["rules"]
    recorded, kinds = ask_all()
    assert kinds == {"hour"}  # no rule holds these hours: the rollups answer
    assert_same(recorded, ask_raw())

    # The rules are declared: the next pass (hour 12) records its hours, complete from 12:00.
    for module in (ds, rh):
        monkeypatch.setattr(module, "rules_of", rules_of)
    get_clock().set(AFTER + timedelta(hours=1))  # type: ignore[attr-defined]
    first = ds.downsample()
    assert first.rule_hours_written == len(rules_of(HTTP)) + len(rules_of(CACHE))
    assert set(fold_state(HTTP)["rules"].values()) == {H12}
    window = {"start": H06, "end": H12 + timedelta(hours=1)}
    with rollup_reads() as reads:
        mixed = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
        kinds = {key[1].split(":")[0] for key, _ in reads._docs}
        assert kinds == {"hour", "rule"}  # 06-11 from the rollups, 12 from the rules
    with raw_reads():
        raw = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
    assert_same(mixed, raw)

    # The run after (the scheduled call) backfills the earlier hours and lowers the rules' first
    # complete hour.
    response = client.post("/v1/downsample")
    assert response.status_code == 200, response.data
    backfill = ds.DownsampleResult.model_validate(response.get_json())
    assert backfill.rule_hours_written == 6 * (len(rules_of(HTTP)) + len(rules_of(CACHE)))
    assert all(at < H06 for at in fold_state(HTTP)["rules"].values())
    with rollup_reads() as reads:
        after = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
        assert {key[1].split(":")[0] for key, _ in reads._docs} == {"rule"}
    assert_same(after, raw)


def test_an_hour_too_large_for_one_document_is_read_raw(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, H06 + timedelta(hours=2))
    # The by-route rule's hours are taken to exceed the document limit (as one over thousands of
    # routes would).
    size = rh.document_size
    monkeypatch.setattr(
        rh, "document_size", lambda path, doc: 10**7 if "http.route" in doc["by"] else size(path, doc)
    )
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    overflowed = [d for d in rule_docs(HTTP) if d.get("overflow")]
    assert {d["by"][0] for d in overflowed} == {"http.route"}
    assert all(not d["series"] for d in overflowed)
    window = {"start": H06, "end": H06 + timedelta(hours=2)}
    by_route = {"group_by": ["http.route"], **window}
    with rollup_reads() as reads:
        got = [query(HTTP, "p90", **by_route), query(HTTP, "count", **by_route)]
        assert {key[1].split(":")[0] for key, _ in reads._docs} == {"hour", "rule"}
    with raw_reads():
        want = [query(HTTP, "p90", **by_route), query(HTTP, "count", **by_route)]
    for g, w in zip(answers(got), answers(want), strict=True):
        assert g.keys() == w.keys()
        assert w
        for key, value in w.items():
            assert g[key] == pytest.approx(value, rel=1e-9)


def test_rules_are_declared_for_known_labels_and_matched_to_the_fewest_series() -> None:
    from pydantic import ValidationError

    from shared.metrics.catalogue import Catalogue, load_catalogue

    rule = recording.rule_for(HTTP, ["region"], [], None)
    assert rule is not None
    assert rule.by == ("region",)
    both = recording.rule_for(HTTP, [], ["http.response.status_code"], None)
    assert both is not None
    assert "http.response.status_code" in both.by
    assert recording.rule_for(HTTP, [], ["region"], "sum") is None  # across: per stored series
    assert recording.rule_for(HTTP, [], ["http.request.method"], None) is None
    with raw_reads():
        assert recording.rule_for(HTTP, [], [], None) is None
    catalogue = load_catalogue().model_dump()
    for bad, message in (
        ({"metric": HTTP, "by": ["tier"], "meaning": "x"}, "never has"),
        ({"metric": "nope", "by": [], "meaning": "x"}, "unknown metric"),
        ({"metric": HTTP, "by": ["region", "region"], "meaning": "x"}, "repeats"),
        ({"metric": HTTP, "by": ["region"], "meaning": "again"}, "declared twice"),
    ):
        with pytest.raises(ValidationError, match=message):
            Catalogue.model_validate({**catalogue, "recording_rules": [*catalogue["recording_rules"], bad]})


def test_closed_hours_not_folded_yet_are_read_from_provisional_rule_hours_while_they_hold(store) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, H12 + timedelta(minutes=30))
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()  # folds up to 12:00; hour 12 closed but may still receive points until 14:05
    caught_up = ds.downsample()
    assert caught_up.tail_hours_written == len(rules_of(HTTP)) + len(rules_of(CACHE))  # hour 12 only
    assert ds.downsample().tail_hours_written == 0  # unchanged minutes: not recomputed
    window = {"start": H06, "end": AFTER.replace(minute=0) + timedelta(hours=1)}

    def ask() -> tuple[list[QueryResult], set[tuple[str, datetime]]]:
        with rollup_reads() as reads:
            results = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
            # Minute ranges that held rollups (an hour without data is an empty range read).
            minutes_read = {
                (key[1], key[2]) for (key, _), docs in reads._docs.items() if key[1] == "minute" and docs
            }
        return results, minutes_read

    def ask_raw_window() -> list[QueryResult]:
        with raw_reads():
            return [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]

    provisional, minutes_read = ask()
    assert minutes_read == set()  # hour 12 from its provisional rule hours, no minute decoded
    assert_same(provisional, ask_raw_window())

    # A point lands late in hour 12 (still within the lateness allowance): its minute rollup
    # changes, the provisional hours no longer hold, and the hour is read from its minutes.
    late = MetricHistory()
    late.observe(
        HTTP,
        {
            "service": "routing",
            "region": "us-central1",
            "http.route": "/v2/route",
            "http.response.status_code": "200",
        },
        H12 + timedelta(minutes=41),
        [0.5] * 7,
    )
    late.flush()
    updated, minutes_read = ask()
    assert minutes_read == {("minute", H12)}
    raw = ask_raw_window()
    assert_same(updated, raw)
    before = answers(provisional)[3]  # rate by region
    after = answers(raw)[3]
    key = ((("region", "us-central1"),), H12)
    assert after[key] > before[key]  # the late point is counted
    # The next run recomputes the request metric's hour 12 (the cache's did not change): it holds.
    assert ds.downsample().tail_hours_written == len(rules_of(HTTP))
    again, minutes_read = ask()
    assert minutes_read == set()
    assert_same(again, raw)


H14 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
IN_HOUR_14 = datetime(2026, 3, 2, 14, 33, tzinfo=UTC)  # hour 14 in progress, folded up to 12:00
LATE_LABELS = {
    "service": "routing",
    "region": "europe-west1",
    "http.route": "/health",
    "http.response.status_code": "503",
    "error.type": "503",
}


def late_batch(at: datetime, values: list[float]) -> Batch:
    history = MetricHistory()
    history.observe(HTTP, LATE_LABELS, at, values)
    return history.batch


def store_once(batch: Batch, batch_id: str) -> int:
    register_series(batch)
    return store_batch(batch, batch_id).documents_written


def minute_docs(at: datetime) -> list[dict]:
    return [
        s.to_dict()
        for s in metric_ref(HTTP).collection(MINUTES).where(filter=FieldFilter("t", "==", at)).stream()
    ]


def test_a_stamp_sum_past_int64_is_unknown_and_never_recorded(fs) -> None:  # type: ignore[no-untyped-def]
    """Firestore answers an int64 overflow of sum() as a float, which cannot show one more write:
    far-future minutes overflow it with 200 rollups (today's minutes take some 19,000)."""
    from shared.metrics.store import UNKNOWN_STAMP_SUM, WRITE_STAMP, stamp_floor

    minutes = fs.collection("stamp-overflow")
    at = datetime(9000, 1, 1, tzinfo=UTC)
    batch = fs.batch()
    for i in range(200):
        batch.set(minutes.document(f"m{i}"), {WRITE_STAMP: stamp_floor(at) + i + 1})
    batch.commit()
    assert minutes_stamp(minutes, at, at + timedelta(minutes=1)) == (200, UNKNOWN_STAMP_SUM)
    assert minutes_stamp(minutes, at, at + timedelta(minutes=1))[1] < 0  # below every real sum
    few = minutes.where(filter=FieldFilter(WRITE_STAMP, "<=", stamp_floor(at) + 2)).get()
    assert len(few) == 2  # and a sum that fits stays exact:
    small = fs.collection("stamp-exact")
    for doc in few:
        small.document(doc.id).set(doc.to_dict())
    assert minutes_stamp(small, at, at + timedelta(minutes=1)) == (2, 2 * stamp_floor(at) + 3)


def test_no_provisional_hour_is_recorded_on_an_unknown_stamp(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A tail too large for an exact stamp sum (Firestore's float past int64) records nothing: a
    provisional hour vouched for by an inexact sum could hold after its minutes changed."""
    from shared.metrics.store import UNKNOWN_STAMP_SUM

    exact = rh.minutes_stamp
    monkeypatch.setattr(rh, "minutes_stamp", lambda *args: (exact(*args)[0], UNKNOWN_STAMP_SUM))
    write_traffic(H06, H12 + timedelta(minutes=30))
    get_clock().set(AFTER)  # type: ignore[attr-defined]
    ds.downsample()
    assert ds.downsample().tail_hours_written == 0
    assert not list(metric_ref(HTTP).collection(RULE_TAIL).stream())
    monkeypatch.setattr(rh, "minutes_stamp", exact)
    assert ds.downsample().tail_hours_written > 0  # exact again: recorded


def stamp_doc(at: datetime, shard: int) -> dict:
    (doc,) = [
        s.to_dict()
        for s in minute_stamps(HTTP).where(filter=FieldFilter("t", "==", at.replace(minute=0))).stream()
        if s.to_dict()["shard"] == shard
    ]
    return doc


def test_every_write_of_a_minute_rollup_raises_its_stamp_and_a_redelivery_writes_nothing(store) -> None:  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 2, 11, 40, tzinfo=UTC)
    minutes = metric_ref(HTTP).collection(MINUTES)
    batch_id = "a" * 64
    shard = shard_of(batch_id, 4)
    # The rollup and, in the same transaction, its hour's stamp document.
    assert store_once(late_batch(at, [0.1]), batch_id) == 2
    (doc,) = minute_docs(at)
    assert doc[WRITE_STAMP] == stamp_floor(at) + 1
    assert stamp_doc(at, shard)[STAMPS_MAP] == {"40": stamp_floor(at) + 1}
    first = minutes_stamp(minutes, at, at + timedelta(minutes=1))
    assert first == (1, stamp_floor(at) + 1)
    # Pub/Sub delivers the same batch again: recognised as applied, nothing written.
    assert store_once(late_batch(at, [0.1]), batch_id) == 0
    assert minutes_stamp(minutes, at, at + timedelta(minutes=1)) == first
    assert stamp_doc(at, shard)[STAMPS_MAP] == {"40": stamp_floor(at) + 1}
    # Another batch of the same writer shard: the same document, written once more.
    assert store_once(late_batch(at, [0.2]), "a" * 8 + "b" * 56) == 2
    (doc,) = minute_docs(at)
    assert doc[WRITE_STAMP] == stamp_floor(at) + 2
    assert doc["series"][next(iter(doc["series"]))]["count"] == 2
    assert minutes_stamp(minutes, at, at + timedelta(minutes=1)) == (1, stamp_floor(at) + 2)
    # Another minute of the hour merges into the same stamp document, one minute per key.
    later = at + timedelta(minutes=1)
    assert store_once(late_batch(later, [0.3]), "a" * 8 + "c" * 56) == 2
    assert stamp_doc(at, shard)[STAMPS_MAP] == {"40": stamp_floor(at) + 2, "41": stamp_floor(later) + 1}
    # The minutes before and after are another range.
    assert minutes_stamp(minutes, at + timedelta(minutes=2), at + timedelta(minutes=3)) == (0, 0)


def test_the_hour_in_progress_is_read_from_its_provisional_hour_and_the_minutes_since(store) -> None:  # type: ignore[no-untyped-def]
    write_traffic(H06, IN_HOUR_14)
    get_clock().set(IN_HOUR_14)  # type: ignore[attr-defined]
    ds.downsample()  # folds up to 12:00
    caught_up = ds.downsample()  # hours 12 and 13 closed, 14 up to 14:30 (3 minutes settle)
    assert caught_up.tail_hours_written == 3 * (len(rules_of(HTTP)) + len(rules_of(CACHE)))
    tail = {d.id: d.to_dict() for d in metric_ref(HTTP).collection(RULE_TAIL).stream()}
    assert {doc["through"] for doc in tail.values() if doc["t"] == H14} == {H14 + timedelta(minutes=30)}
    assert ds.downsample().tail_hours_written == 0  # unchanged minutes: not recomputed
    window = {"start": H06, "end": H14 + timedelta(hours=1)}

    def ask(before: bool = False, queries_minutes: bool = False) -> tuple[list[QueryResult], set[datetime]]:
        with rollup_reads() as reads, queried() as collections, contextlib.ExitStack() as stack:
            if before:
                stack.enter_context(recording.previous_tail())
            results = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
            # Where the request metric's minute ranges read from rollups (holding any) start.
            starts = {
                key[2] for (key, _), docs in reads._docs.items() if key[:2] == (HTTP, "minute") and docs
            }
            checks.append([key[2:] for key in reads._once if key[:2] == ("minutes_stamp", HTTP)])
        # Stamp documents read once per metric and build, and the rollups by id: no query over
        # the minute rollups while the provisional hours hold (the path before: aggregations and
        # range queries over them, always).
        assert (MINUTES in collections) == (before or queries_minutes)
        if not before:
            assert collections.count(MINUTE_STAMPS) == 2  # the two metrics' tails
        return results, starts

    def ask_raw_window() -> list[QueryResult]:
        with raw_reads():
            return [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]

    checks: list[list[tuple[datetime, datetime]]] = []  # the stamp ranges each build aggregated
    provisional, starts = ask()
    assert starts == {H14 + timedelta(minutes=30)}  # only the minutes since the provisional hour
    raw = ask_raw_window()
    assert_same(provisional, raw)
    before, starts = ask(before=True)
    assert starts == {H14 + timedelta(minutes=30)}
    assert checks[-1] == [(H12, H14 + timedelta(minutes=30))]  # one aggregation for the whole tail
    assert_same(before, raw)

    # A point arrives late for 14:10, a minute the provisional hour merged: its stamp changed, the
    # whole hour is read from its minutes (a range query), and the point is counted.
    assert store_once(late_batch(H14 + timedelta(minutes=10), [2.5] * 4), "c" * 64) == 2
    late, starts = ask(queries_minutes=True)
    assert starts == {H14}
    raw = ask_raw_window()
    assert_same(late, raw)
    before, starts = ask(before=True)
    assert starts == {H14}
    # The whole tail's stamp changed: each hour checked on its own (12 and 13 still hold).
    assert set(checks[-1]) == {
        (H12, H14 + timedelta(minutes=30)),
        (H12, H12 + timedelta(hours=1)),
        (H12 + timedelta(hours=1), H14),
        (H14, H14 + timedelta(minutes=30)),
    }
    assert_same(before, raw)
    key = ((("region", "europe-west1"),), H14)
    assert answers(raw)[3][key] > answers(provisional)[3][key]  # rate by region
    assert ds.downsample().tail_hours_written == len(rules_of(HTTP))  # the cache's hour held
    again, starts = ask()
    assert starts == {H14 + timedelta(minutes=30)}
    assert_same(again, raw)

    # A point arrives for 14:35, after the provisional hour: the rollups after it are named by
    # their stamp documents, so it is counted without a recompute.
    assert store_once(late_batch(H14 + timedelta(minutes=35), [1.5] * 3), "d" * 64) == 2
    after, starts = ask()
    assert starts == {H14 + timedelta(minutes=30)}
    raw = ask_raw_window()
    assert_same(after, raw)
    assert answers(raw)[3][key] > answers(again)[3][key]

    # A writer shard the minute 14:20 did not have arrives: a new rollup, the stamp changes.
    at = H14 + timedelta(minutes=20)
    shards = {doc["shard"] for doc in minute_docs(at)}
    batch_id = next(
        candidate
        for i in range(1000)
        if shard_of(candidate := hashlib.sha256(f"shard-{i}".encode()).hexdigest(), 4) not in shards
    )
    assert store_once(late_batch(at, [0.7, 0.9]), batch_id) == 2
    assert len(minute_docs(at)) == len(shards) + 1
    sharded, starts = ask(queries_minutes=True)
    assert starts == {H14}
    raw = ask_raw_window()
    assert_same(sharded, raw)
    assert_same(ask(before=True)[0], raw)
    assert ds.downsample().tail_hours_written == len(rules_of(HTTP))

    # Pub/Sub redelivers that batch: nothing written, the provisional hour still holds, nothing
    # counted twice.
    assert store_once(late_batch(at, [0.7, 0.9]), batch_id) == 0
    redelivered, starts = ask()
    assert starts == {H14 + timedelta(minutes=30)}
    assert_same(redelivered, raw)


def test_minutes_without_stamp_documents_are_read_with_range_queries(store) -> None:  # type: ignore[no-untyped-def]
    """Rollups written before stamp documents existed: the provisional hours over them do not
    hold (their digest is not the stamp documents'), and minutes before the first hour that holds
    are read with range queries, as before; from it on by id."""
    write_traffic(H06, IN_HOUR_14)
    get_clock().set(IN_HOUR_14)  # type: ignore[attr-defined]
    ds.downsample()
    ds.downsample()
    for metric in (HTTP, CACHE):  # hour 12 as written before stamp documents
        old = minute_stamps(metric).where(filter=FieldFilter("t", "==", H12)).stream()
        for snapshot in old:
            snapshot.reference.delete()
    window = {"start": H06, "end": H14 + timedelta(hours=1)}
    with rollup_reads() as reads, queried() as collections:
        results = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
        ranges = {key[2:] for (key, _), docs in reads._docs.items() if key[:2] == (HTTP, "minute") and docs}
    assert ranges == {
        (H12, H12 + timedelta(hours=1)),
        (H14 + timedelta(minutes=30), H14 + timedelta(hours=1)),
    }
    assert MINUTES in collections  # hour 12 by a range query
    with raw_reads():
        assert_same(results, [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES])
    # With no stamp documents at all, nothing holds: the whole tail by range queries.
    for metric in (HTTP, CACHE):
        for snapshot in minute_stamps(metric).stream():
            snapshot.reference.delete()
    with rollup_reads() as reads:
        results = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
        ranges = {key[2:] for (key, _), docs in reads._docs.items() if key[:2] == (HTTP, "minute") and docs}
    assert ranges == {(H12, H14 + timedelta(hours=1))}
    with raw_reads():
        assert_same(results, [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES])


def test_a_provisional_hour_is_not_recorded_over_minutes_without_write_stamps(store) -> None:  # type: ignore[no-untyped-def]
    # Minute rollups written before write stamps existed: the hour is read from its minutes.
    write_traffic(H06, IN_HOUR_14)
    get_clock().set(IN_HOUR_14)  # type: ignore[attr-defined]
    ds.downsample()
    old = metric_ref(HTTP).collection(MINUTES).where(filter=FieldFilter("t", ">=", H14)).stream()
    for snapshot in old:
        snapshot.reference.update({WRITE_STAMP: firestore.DELETE_FIELD})
    ds.downsample()
    tail = [d.to_dict() for d in metric_ref(HTTP).collection(RULE_TAIL).stream()]
    assert {doc["t"] for doc in tail} == {H12, H12 + timedelta(hours=1)}
    with rollup_reads() as reads:
        window = {"start": H06, "end": H14 + timedelta(hours=1)}
        results = [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES]
        starts = {key[2] for (key, _), docs in reads._docs.items() if key[:2] == (HTTP, "minute") and docs}
    assert starts == {H14}
    with raw_reads():
        assert_same(results, [query(metric, agg, **{**kw, **window}) for metric, agg, kw in QUERIES])
