"""Customer health bench: the daily run over 10,000 customers (time, Firestore reads per customer,
queries for usage), and drift detection power at 1,000 and 100,000 routed requests a day against
a fixed ±5-point band, side by side in one run.

    .venv/bin/python bench/health.py                  # everything (starts a Firestore emulator)
    .venv/bin/python bench/health.py --customers 2000 --trials 100
    .venv/bin/python bench/health.py --customers 10000 --pipeline-only   # routing -> ingestion -> run

Scoring runs the very code of POST /v1/health/run (``run_health``) on memory (the pure cost of
scoring) and on the Firestore emulator (customers, events, states and daily records read and
written for real) with usage from memory; and (``bench_pipeline``, ``--pipeline-only``) on usage
that went the production way: 56 days of every customer's traffic counted by routing's
instruments, shipped as its OTLP batches, pushed to ``ingest_pubsub`` and kept in the customer
usage store, then scored with usage read from that store and notices published to the Pub/Sub
emulator, every Firestore read and write counted at the client, beside the memory run on the
same numbers (the categories must agree: every customer counted).

Drift power: a week of traffic (7 times requests/day) drawn from the expected mix with d points
moved from Elro to Lua, many trials per d; the multinomial is drawn as a chain of binomials in
their normal approximation (every count here is over 1,000).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ION_LOG_LEVEL", "WARNING")

AS_OF = date(2026, 11, 30)


def bench_memory(n: int) -> dict[str, float]:
    from devtools.customer_history import synthetic_customers
    from functions.health.config import load_config
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import MemoryHealthStore
    from functions.health.usage import MemoryUsage

    cfg = load_config(DEFAULT_CONFIG_FILE)
    customers, usage, events = synthetic_customers(n, AS_OF)
    store = MemoryHealthStore(customer_list=customers, events=events)
    started = time.perf_counter()
    summary = run_health(AS_OF, cfg=cfg, usage_source=MemoryUsage(usage=usage), store=store, publish=None)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "per_customer_ms": 1000 * seconds / n,
        "categories": summary.categories,
        "fired": summary.actions_fired,
    }  # type: ignore[dict-item]


def bench_firestore(n: int) -> dict[str, object]:
    from devtools.emulators import start_firestore
    from devtools.processes import free_port

    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-bench")
    emulator = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        port = free_port()
        emulator = start_firestore(port, log_dir=ROOT / ".run" / "bench-logs")
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    try:
        return _bench_firestore(n)
    finally:
        if emulator is not None:
            emulator.stop()


def _bench_firestore(n: int) -> dict[str, object]:
    from devtools.customer_history import synthetic_customers
    from functions.health.config import load_config
    from functions.health.customer_events import EVENTS_COLLECTION, _event_doc, event_doc_id
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import MemoryUsage
    from shared.customer_keys import CUSTOMERS_COLLECTION
    from shared.firestore import get_firestore

    cfg = load_config(DEFAULT_CONFIG_FILE)
    customers, usage, events = synthetic_customers(n, AS_OF)
    client = get_firestore()
    started = time.perf_counter()
    batch, pending = client.batch(), 0
    for customer in customers:
        batch.set(client.collection(CUSTOMERS_COLLECTION).document(customer.id), customer.model_dump())
        pending += 1
        for event in events.get(customer.id, []):
            batch.set(
                client.collection(EVENTS_COLLECTION).document(event_doc_id(customer.id, event.event_id)),
                _event_doc(customer.id, event),
            )
            pending += 1
        if pending >= 400:
            batch.commit()
            batch, pending = client.batch(), 0
    if pending:
        batch.commit()
    load_seconds = time.perf_counter() - started
    results = {}
    for label, day in (("first run", AS_OF), ("re-run, same day", AS_OF)):
        store = FirestoreHealthStore()
        source = MemoryUsage(usage=usage)
        started = time.perf_counter()
        summary = run_health(day, cfg=cfg, usage_source=source, store=store, publish=None)
        seconds = time.perf_counter() - started
        results[label] = {
            "seconds": seconds,
            "per_customer_ms": 1000 * seconds / n,
            "reads_per_customer": summary.reads_per_customer,
            "usage_queries": summary.usage_queries,
        }
    events_total = sum(len(v) for v in events.values())
    return {"load_seconds": load_seconds, "events": events_total, "runs": results}


# Through routing, ingestion and the store ----------------------------------------------------------


def daily_counts(usage: dict[str, Any]) -> dict[str, dict[date, dict[tuple[str, str, str], int]]]:
    """Whole counts per customer, day and (metric field, value, value) from the synthetic usage:
    each day's requests over the features the customer uses, the bad share as client errors, the
    window's feedback answers on its last day."""
    counts: dict[str, dict[date, dict[tuple[str, str, str], int]]] = {}
    for cid, u in usage.items():
        features = sorted(u.features) or ["route_key"]
        total = sum(u.outcomes.values()) or 1.0
        bad = 1 - u.outcomes.get("ok", total) / total
        days: dict[date, dict[tuple[str, str, str], int]] = {}
        for day, value in u.daily.items():
            requests = round(value)
            if not requests:
                continue
            per_day = days.setdefault(day, {})
            for i, feature in enumerate(features):
                share = requests // len(features) + (1 if i < requests % len(features) else 0)
                errors = round(share * bad)
                for outcome, n in (("ok", share - errors), ("client_error", errors)):
                    if n:
                        per_day[("requests", feature, outcome)] = n
        last = AS_OF - timedelta(days=1)
        for answer, n in u.feedback.items():
            if round(n):
                days.setdefault(last, {})[("feedback", answer, "")] = round(n)
        counts[cid] = days
    return counts


def usage_of(days: dict[date, dict[tuple[str, str, str], int]], window_days: int = 28) -> Any:
    """The ``Usage`` the health run reads from ``days`` (the same numbers, for the memory run)."""
    from functions.health.signals import Usage

    usage = Usage()
    window_start = AS_OF - timedelta(days=window_days)
    for day, per_day in days.items():
        for (field, a, b), n in per_day.items():
            if field == "requests":
                usage.daily[day] = usage.daily.get(day, 0) + n
                if day >= window_start:
                    usage.features[a] = usage.features.get(a, 0) + n
                    usage.outcomes[b] = usage.outcomes.get(b, 0) + n
            elif day >= window_start:
                usage.feedback[a] = usage.feedback.get(a, 0) + n
    return usage


class _Counted:
    """Every document written (commits) and read (gets, query results) through the Firestore client."""

    def __init__(self) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        self.writes = self.reads = 0
        counter = self
        commit, get, query = (
            FirestoreClient.commit,
            FirestoreClient.batch_get_documents,
            FirestoreClient.run_query,
        )

        def counted_commit(client: Any, request: Any = None, **kwargs: Any) -> Any:
            response = commit(client, request=request, **kwargs)
            counter.writes += len(request["writes"] if isinstance(request, dict) else request.writes)
            return response

        def counted_get(client: Any, request: Any = None, **kwargs: Any) -> Any:
            counter.reads += len(request["documents"] if isinstance(request, dict) else request.documents)
            return get(client, request=request, **kwargs)

        def counted_query(client: Any, request: Any = None, **kwargs: Any) -> Any:
            for response in query(client, request=request, **kwargs):
                if response.document.name:
                    counter.reads += 1
                yield response

        FirestoreClient.commit = counted_commit  # type: ignore[method-assign]
        FirestoreClient.batch_get_documents = counted_get  # type: ignore[method-assign]
        FirestoreClient.run_query = counted_query  # type: ignore[method-assign]


def bench_pipeline(n: int) -> dict[str, Any]:
    """The daily run on usage that went the production way: 56 days of n customers' traffic
    counted by routing's instruments, shipped as its OTLP batches (one once 2,000 series are
    pending, as routing flushes), each pushed to ``ingest_pubsub`` at that day's clock, stored
    in the customer usage store; then ``POST /v1/health/run``'s code with the Firestore store,
    usage from the store and notices published to the Pub/Sub emulator. Beside it, the same
    customers and numbers scored from memory (the figure this bench printed before)."""
    from devtools.emulators import start_firestore_and_pubsub
    from devtools.processes import free_port

    os.environ["GOOGLE_CLOUD_PROJECT"] = "ion-ops-bench"
    fs_port, ps_port = free_port(), free_port()
    started = start_firestore_and_pubsub(
        fs_port, ps_port, "ion-ops-bench", log_dir=ROOT / ".run" / "bench-logs"
    )
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{fs_port}"
    os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{ps_port}"
    os.environ["ION_METRICS_UPDATES_TOPIC"] = ""
    # The clients and settings an earlier part of this run cached point at its emulators (stopped
    # since) and the project it read.
    from shared import firestore, pubsub
    from shared.settings import get_settings

    get_settings.cache_clear()
    firestore.reset_clients()
    pubsub.reset_clients()
    try:
        return _bench_pipeline(n)
    finally:
        for proc in started:
            proc.stop()


def _bench_pipeline(n: int) -> dict[str, Any]:
    import base64
    from collections.abc import Callable

    import functions_framework
    from google.cloud import pubsub_v1

    from devtools.customer_history import synthetic_customers
    from functions.health.config import load_config
    from functions.health.customer_events import EVENTS_COLLECTION, _event_doc, event_doc_id
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore, MemoryHealthStore
    from functions.health.usage import MemoryUsage, StoredUsage
    from functions.routing.metrics import RoutingMetrics
    from functions.routing.telemetry import Telemetry, TelemetrySettings
    from shared.clock import FrozenClock, set_clock
    from shared.customer_keys import CUSTOMERS_COLLECTION
    from shared.firestore import get_firestore
    from shared.metrics.customer_usage import BYTES, USAGE
    from shared.notices import publish_notice

    cfg = load_config(DEFAULT_CONFIG_FILE)
    customers, synthetic, events = synthetic_customers(n, AS_OF)
    counts = {cid: daily_counts({cid: u})[cid] for cid, u in synthetic.items()}
    usage = {cid: usage_of(days, cfg.signals.window_days) for cid, days in counts.items()}

    started = time.perf_counter()
    memory = run_health(
        AS_OF,
        cfg=cfg,
        usage_source=MemoryUsage(usage=usage),
        store=MemoryHealthStore(customer_list=customers, events=events),
        publish=None,
    )
    memory_seconds = time.perf_counter() - started

    publisher = pubsub_v1.PublisherClient()
    publisher.create_topic(name=publisher.topic_path("ion-ops-bench", "alerts"))
    client = get_firestore()
    batch, pending = client.batch(), 0
    for customer in customers:
        batch.set(client.collection(CUSTOMERS_COLLECTION).document(customer.id), customer.model_dump())
        pending += 1
        for event in events.get(customer.id, []):
            doc = client.collection(EVENTS_COLLECTION).document(event_doc_id(customer.id, event.event_id))
            batch.set(doc, _event_doc(customer.id, event))
            pending += 1
        if pending >= 400:
            batch.commit()
            batch, pending = client.batch(), 0
    if pending:
        batch.commit()

    counter = _Counted()
    clock = FrozenClock(datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC))
    set_clock(clock)
    push = functions_framework.create_app("ingest_pubsub", str(ROOT / "main.py"), "cloudevent").test_client()
    batches = {"n": 0, "bytes": 0}

    def deliver(payload: bytes) -> None:
        batches["n"] += 1
        batches["bytes"] += len(payload)
        envelope = {
            "message": {
                "data": base64.b64encode(payload).decode(),
                "messageId": str(batches["n"]),
                "publishTime": clock.now().isoformat().replace("+00:00", "Z"),
                "attributes": {"content_type": "application/x-protobuf"},
            },
            "subscription": "projects/ion-ops-bench/subscriptions/metrics",
        }
        assert push.post("/projects/ion-ops-bench/topics/metrics", json=envelope).status_code == 200

    now_ns: Callable[[], int] = lambda: int(clock.now().timestamp() * 1e9)  # noqa: E731
    telemetry = Telemetry(
        "routing",
        publish=deliver,
        settings=TelemetrySettings(background_flush=False),
        region="us-central1",
        clock_ns=now_ns,
    )
    metrics = RoutingMetrics(telemetry)
    days = sorted({day for per in counts.values() for day in per})
    started = time.perf_counter()
    for day in days:
        clock.set(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12))
        for cid, per in counts.items():
            for (field, a, b), value in per.get(day, {}).items():
                if field == "requests":
                    metrics.customer_requests.add(value, (("customer", cid), ("feature", a), ("outcome", b)))
                else:
                    metrics.customer_feedback.add(value, (("customer", cid), ("answer", a)))
            telemetry.maybe_flush()
        telemetry.flush()
    ingest_seconds = time.perf_counter() - started
    ingest_writes, ingest_reads = counter.writes, counter.reads

    sizes = [
        (snapshot.to_dict() or {}).get(BYTES, 0)
        for snapshot in client.collection(USAGE).select([BYTES]).stream()
    ]
    counter.writes = counter.reads = 0
    clock.set(datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC) + timedelta(hours=5, minutes=15))
    source = StoredUsage()
    started = time.perf_counter()
    summary = run_health(
        AS_OF, cfg=cfg, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice
    )
    run_seconds = time.perf_counter() - started
    return {
        "customers": n,
        "memory_seconds": memory_seconds,
        "memory_categories": memory.categories,
        "days": len(days),
        "batches": batches["n"],
        "batch_bytes": batches["bytes"] / max(1, batches["n"]),
        "ingest_seconds": ingest_seconds,
        "ingest_writes": ingest_writes,
        "ingest_reads": ingest_reads,
        "doc_bytes_max": max(sizes, default=0),
        "doc_bytes_mean": sum(sizes) / max(1, len(sizes)),
        "documents": len(sizes),
        "run_seconds": run_seconds,
        "run_writes": counter.writes,
        "run_reads": counter.reads,
        "usage_reads": summary.usage_reads,
        "usage_queries": summary.usage_queries,
        "categories": summary.categories,
        "usage_unknown": summary.usage_unknown,
        "notices": summary.notices_published,
        "same_as_memory": summary.categories == memory.categories,
    }


def metric_reads_estimate(n: int, combos: float = 6.0, bucket_series: int = 100) -> dict[str, float]:
    """Rollup documents the three usage queries read (an estimate from the store's layout): each
    query reads every rollup of its metric in its window; a rollup holds one bucket of series."""
    request_series = n * combos
    feedback_series = n * 3
    hours_56, hours_28 = 56 * 24, 28 * 24
    request_buckets = math.ceil(request_series / bucket_series)
    feedback_buckets = math.ceil(feedback_series / bucket_series)
    docs = request_buckets * (hours_56 + hours_28) + feedback_buckets * hours_28
    return {"series": request_series + feedback_series, "rollup_docs": docs, "per_customer": docs / n}


# Routing hot path -------------------------------------------------------------------------------


def bench_routing_keys(requests: int, rounds: int = 7) -> dict[str, float]:
    """POST /v2/route through routing's real entry point in-process (functions-framework's app,
    no network), per request: open API without a key, an operator key (ION_API_KEYS), and a
    customer key warm in L1 (the key record comes from memory here, as after the first lookup;
    Redis off, so each rate-limit bucket is the local one in the keyed cases). The variants take
    turns in every round and each keeps its best round, so a busy machine hurts them alike."""
    import functions_framework

    os.environ.update(
        {
            "ION_METRICS_ENABLED": "false",
            "ION_CACHE_WARM_ITEMS": "0",
            "ION_RATE_LIMIT_PER_SECOND": "1000000",
            "ION_RATE_LIMIT_BURST": "1000000",
        }
    )
    os.environ.pop("REDIS_URL", None)
    from functions.routing.customer_keys import CustomerKeys, CustomerKeySettings
    from functions.routing.service import RoutingService, install_service, reset_service
    from functions.routing.settings import get_routing_settings
    from shared.customer_keys import hash_key, new_key

    key_id, customer_key = new_key(CustomerKeySettings().signing_secrets()[0])
    records = {key_id: ("acme", hash_key(customer_key))}
    body = b'{"resonance_key": "calm-flowing-seek-advice", "user_id": "bench-user"}'
    client = functions_framework.create_app("route", str(ROOT / "main.py"), "http").test_client()
    variants = {}
    for label, operator_keys, header in (
        ("open, no key", "", None),
        ("operator key", "operator-key-0123456789", "operator-key-0123456789"),
        ("customer key", "operator-key-0123456789", customer_key),
        ("customer key, open API", "", customer_key),
    ):
        os.environ["ION_API_KEYS"] = operator_keys
        get_routing_settings.cache_clear()
        service = RoutingService()
        service.guard.customer_keys = CustomerKeys(
            CustomerKeySettings(), redis_client=lambda: None, fetch=records.__getitem__
        )
        headers = {"Content-Type": "application/json", **({"X-API-Key": header} if header else {})}
        variants[label] = (service, headers)
    best = dict.fromkeys(variants, math.inf)
    for _ in range(rounds):
        for label, (service, headers) in variants.items():
            install_service(service)
            assert client.post("/v2/route", data=body, headers=headers).status_code == 200
            started = time.perf_counter()
            for _ in range(requests):
                client.post("/v2/route", data=body, headers=headers)
            best[label] = min(best[label], (time.perf_counter() - started) / requests)
    # What a key adds, alone: the guard's decision and the customer counters, in a tight loop.
    from werkzeug.test import EnvironBuilder

    added: dict[str, float] = {}
    for label, (service, headers) in variants.items():
        request = EnvironBuilder(path="/v2/route", method="POST", data=body, headers=headers).get_request()
        install_service(service)
        guard, metrics = service.guard, service.metrics
        loops = 20_000
        fastest = math.inf
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(loops):
                presented = request.headers.get("X-API-Key")
                if guard.applies(presented):
                    _headers, customer = guard.admit(presented)
                    if customer is not None:
                        metrics.count_customer_request(
                            customer, request.path, request.get_data(cache=True), 200
                        )
            fastest = min(fastest, (time.perf_counter() - started) / loops)
        added[f"{label} (guard + counters)"] = fastest * 1e6
    os.environ.pop("ION_API_KEYS", None)
    reset_service()
    return {**{label: seconds * 1e6 for label, seconds in best.items()}, **added}


# Drift power -------------------------------------------------------------------------------------


def draw_week(mix: dict[str, float], n: int, rng: random.Random) -> dict[str, int]:
    counts, left, share_left = {}, n, 1.0
    names = list(mix)
    for name in names[:-1]:
        p = min(1.0, mix[name] / share_left) if share_left > 0 else 0.0
        mean, sd = left * p, math.sqrt(max(left * p * (1 - p), 0.0))
        value = max(0, min(left, round(rng.gauss(mean, sd))))
        counts[name] = value
        left -= value
        share_left -= mix[name]
    counts[names[-1]] = left
    return counts


def bench_power(trials: int) -> list[tuple[int, float, dict[str, float], dict[str, float]]]:
    from functions.health.config import load_config
    from functions.health.personas import band_alert, drift_vs_expected
    from functions.health.settings import DEFAULT_CONFIG_FILE

    cfg = load_config(DEFAULT_CONFIG_FILE).personas
    expected = dict(cfg.expected_mix)
    rng = random.Random(3)
    rows = []
    for per_day in (1_000, 100_000):
        for shift in (0, 1, 2, 3, 4, 5, 6, 8, 10):
            mix = {**expected, "Lua": expected["Lua"] + shift / 100, "Elro": expected["Elro"] - shift / 100}
            ours = band = 0
            for _ in range(trials):
                week = draw_week(mix, 7 * per_day, rng)
                ours += drift_vs_expected(week, cfg).drift
                band += band_alert(week, expected, 0.05)
            rows.append((per_day, shift, {"ours": ours / trials}, {"band": band / trials}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument(
        "--firestore-customers",
        type=int,
        default=2_000,
        help="customers for the emulator run (the slow part; reads per customer do not depend on it)",
    )
    parser.add_argument("--no-firestore", action="store_true")
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the run on usage that went through routing, ingestion and the store",
    )
    args = parser.parse_args()
    n = args.customers
    if args.pipeline_only:
        print_pipeline(bench_pipeline(n))
        return

    print(f"== scoring {n:,} customers (run_health, usage from memory)")
    memory = bench_memory(n)
    print(f"memory store:    {memory['seconds']:.2f} s, {memory['per_customer_ms']:.3f} ms/customer")
    print(f"  categories {memory['categories']}  actions fired {memory['fired']}")
    if not args.no_firestore:
        n_fs = args.firestore_customers
        fs = bench_firestore(n_fs)
        print(
            f"firestore emulator: loaded {n_fs:,} customers, {fs['events']:,} events "
            f"in {fs['load_seconds']:.1f} s"
        )
        for label, r in fs["runs"].items():  # type: ignore[attr-defined]
            print(
                f"  {label:18s} {r['seconds']:.2f} s, {r['per_customer_ms']:.3f} ms/customer, "
                f"{r['reads_per_customer']:.3f} Firestore reads/customer, {r['usage_queries']} usage queries"
            )
    if not args.no_firestore:
        print_pipeline(bench_pipeline(n))
    estimate = metric_reads_estimate(n)
    print(
        f"metric store, as before the usage store (estimate, not measured): {estimate['series']:,.0f} "
        "customer series -> "
        f"{estimate['rollup_docs']:,.0f} rollup documents read by the usage queries "
        f"({estimate['per_customer']:.1f} per customer), whatever the number of signals"
    )
    print()
    print("== routing hot path: POST /v2/route in-process, best of 7 interleaved rounds x 500 requests")
    timings = bench_routing_keys(500)
    base = timings["open, no key"]
    for label, micros in timings.items():
        if "guard" in label:
            print(f"  {label:43s} {micros:8.2f} us/request")
        else:
            print(f"  {label:43s} {micros:8.1f} us/request  ({micros / base:.3f}x the open API)")
    print()
    print(f"== drift detection power ({args.trials} simulated weeks per cell; d points moved Elro -> Lua)")
    print("requests/day  shift   chi2+JS (ours)   ±5-point band")
    for per_day, shift, ours, band in bench_power(args.trials):
        print(f"{per_day:>12,}  {shift:>4}pt   {ours['ours']:>14.0%}   {band['band']:>13.0%}")


def print_pipeline(r: dict[str, Any]) -> None:
    n = r["customers"]
    print(f"== {n:,} customers through routing's counters and OTLP batches, ingest_pubsub, the usage store")
    print(
        f"  memory (usage from memory, the old figure): {r['memory_seconds']:.2f} s, {r['memory_categories']}"
    )
    print(
        f"  ingest {r['days']} days: {r['batches']:,} batches ({r['batch_bytes'] / 1024:.0f} KiB each) in "
        f"{r['ingest_seconds']:.1f} s; {r['ingest_writes']:,} writes "
        f"({r['ingest_writes'] / r['batches']:.1f} per batch, {r['ingest_writes'] / n:.1f} per customer), "
        f"{r['ingest_reads']:,} reads"
    )
    print(
        f"  usage store: {r['documents']:,} day documents, mean {r['doc_bytes_mean'] / 1024:.1f} KiB, "
        f"largest {r['doc_bytes_max'] / 1024:.1f} KiB"
    )
    print(
        "  health run (Firestore store, usage from the usage store, notices published): "
        f"{r['run_seconds']:.2f} s, "
        f"{1000 * r['run_seconds'] / n:.2f} ms/customer; {r['run_reads'] / n:.2f} reads and "
        f"{r['run_writes'] / n:.2f} writes per customer ({r['usage_reads']:,} usage documents, "
        f"{r['usage_queries']} usage queries); {r['notices']:,} notices"
    )
    print(
        f"  categories {r['categories']}; usage_unknown {r['usage_unknown']}; "
        f"same as from memory: {r['same_as_memory']}"
    )


if __name__ == "__main__":
    main()
