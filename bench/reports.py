"""Reports bench: dashboard render time per format and window over a week of metric history,
Firestore reads per render, and the weekly report's build time and size.

    .venv/bin/python bench/reports.py            # the whole bench (a few minutes: it writes history)
    .venv/bin/python bench/reports.py --quick    # 12 hours of history, 1h and 24h windows only
    .venv/bin/python bench/reports.py --windows 7d   # the whole history, the 7-day builds only

Each dashboard and window is built cold (no view cache, a fresh build's reads) side by side in
one run: *raw* answers every query from the stored series (hour rollups and the minutes of the
hours not folded yet, each range read once per build: the path before recording rules), *rules*
as served, from the recording rules' hours (``shared/metrics/recording.py``), the provisional
hours of the unfolded tail while the tail's stamp documents show their minutes unchanged (one
query over those small documents per metric) and the minute rollups after them read by id,
merged once per rule; *before* the same with the tail as read before stamp documents (an
aggregation over the minute rollups' write stamps to check the provisional hours, range queries
over the minute rollups for the minutes after them: ``recording.previous_tail()``); *snaps* as
served, but every document read through the client's snapshots, as before
``shared.firestore_reads`` (so are *raw* and *before*); *unmerged* as served, but a window charted
by the minute (1h) folded from every stored series, as before its minutes were merged per minute by
the rules (``rule_reduce.unmerged_minutes()``). ``mq`` is the number of queries over the
minute rollups (``metric_minutes``) in one build: on the emulator each scans the collection
(0.2-1 s under load, whatever it returns). The machine's load average is printed with the table.

History, written through the ingestion writer and folded by the downsampler as in production:
the last 24 h at every minute (what the 1h and 24h windows read), the six days before at one
minute in ten (folded into hours, what the 7d window reads), production's cardinality of the
request histogram (20 routes x 4 statuses x 3 regions), personas, cache series, instance and lag
gauges; the hours that closed less than the lateness allowance and grace ago (the last 2-3) are
left in minutes, not folded, as the downsampler leaves them. Reads are counted by wrapping the
Firestore client's stream/get calls (documents returned; an aggregation query counts one), here
only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGIONS = {"us-central1": 0.020, "europe-west1": 0.030, "asia-southeast1": 0.040}


class ReadCounter:
    def __init__(self) -> None:
        self.documents = 0
        self.minute_queries = 0  # queries and aggregations over ``metric_minutes``

    def install(self) -> None:
        from google.cloud.firestore_v1 import aggregation, client, document, query

        counter = self
        original_stream = query.Query.stream
        original_get = document.DocumentReference.get
        original_get_all = client.Client.get_all
        original_aggregate = aggregation.AggregationQuery.get

        def aggregate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            # One result, billed as one read per 1,000 index entries: counted as one read.
            counter.documents += 1
            counter.minute_queries += self._nested_query._parent.id == "metric_minutes"
            return original_aggregate(self, *args, **kwargs)

        def stream(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            counter.minute_queries += self._parent.id == "metric_minutes"
            for snapshot in original_stream(self, *args, **kwargs):
                counter.documents += 1
                yield snapshot

        def get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            counter.documents += 1
            return original_get(self, *args, **kwargs)

        def get_all(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            for snapshot in original_get_all(self, *args, **kwargs):
                counter.documents += 1
                yield snapshot

        from shared import firestore_reads

        original_stream_fields = firestore_reads.stream_fields
        original_get_all_fields = firestore_reads.get_all_fields

        def stream_fields(query, *args, **kwargs):  # type: ignore[no-untyped-def]
            counter.minute_queries += query._parent.id == "metric_minutes"
            for found in original_stream_fields(query, *args, **kwargs):
                counter.documents += 1
                yield found

        def get_all_fields(*args, **kwargs):  # type: ignore[no-untyped-def]
            for found in original_get_all_fields(*args, **kwargs):
                counter.documents += 1
                yield found

        firestore_reads.stream_fields = stream_fields
        firestore_reads.get_all_fields = get_all_fields
        query.Query.stream = stream  # type: ignore[method-assign]
        document.DocumentReference.get = get  # type: ignore[method-assign]
        client.Client.get_all = get_all  # type: ignore[method-assign]
        aggregation.AggregationQuery.get = aggregate  # type: ignore[method-assign]


# Production's shape of the request metric: every route routing answers, by status, in three
# regions (240 series), and the persona decisions; the default run. ``--lean`` writes the earlier
# six series (one route, two statuses) for comparison.
ROUTES = [
    "/v2/route", "/v1/route", "/v2/route/bulk", "/v2/feedback", "/v2/recommend", "/health",
    "/v2/personas", "/v2/personas/{id}", "/v2/route/explain", "/v2/keys/check", "/v1/feedback",
    "/v1/recommend", "/v2/experiments", "/v2/experiments/{id}", "/v2/weights", "/v2/weights/{set}",
    "/v2/cache/stats", "/v2/inference", "/v2/inference/batch", "/v2/usage",
]  # fmt: skip
STATUSES = {"200": 0.97, "422": 0.015, "429": 0.01, "503": 0.005}
PERSONAS = ("mentor", "coach", "listener", "challenger")
LEAN = False


def minute_of(history, minute: datetime) -> None:  # type: ignore[no-untyped-def]
    hour = minute.hour + minute.minute / 60
    load = 1.0 + 0.6 * max(0.0, 1 - abs(hour - 15) / 9)  # a daily shape
    routes = ROUTES[:1] if LEAN else ROUTES
    statuses = {"200": 1.0, "503": 0.002} if LEAN else STATUSES
    for region, latency in REGIONS.items():
        for rank, route in enumerate(routes):
            share = 0.6 if rank == 0 else 0.4 / max(1, len(routes) - 1)
            base = {
                "service": "routing",
                "region": region,
                "http.route": route,
                "http.request.method": "POST",
            }
            for status, part in statuses.items():
                samples = [latency * 0.8, latency, latency * 1.3, latency * 2.5] if status == "200" else [0.4]
                history.observe_weighted(
                    "http.server.request.duration",
                    {**base, "http.response.status_code": status},
                    minute,
                    samples,
                    250 * load * share * part,
                )
        if not LEAN:
            for persona in PERSONAS:
                history.increment(
                    "ion.routing.persona.selected",
                    {"service": "routing", "region": region, "persona": persona},
                    minute,
                    40 * load,
                )
        cache = {"region": region, "endpoint": "route"}
        for tier, result, n in (
            ("l1", "hit", 640),
            ("l1", "miss", 360),
            ("l2", "hit", 320),
            ("l2", "miss", 40),
        ):
            history.increment(
                "ion.cache.requests", {**cache, "tier": tier, "result": result}, minute, n * load
            )
        history.gauge("cloudrun.container.instance.count", {"region": region, "state": "active"}, minute, 9)
        history.gauge("cloudsql.replication.lag", {"region": region, "database": "p:ion"}, minute, 0.04)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--windows", default="", help="comma-separated windows to build (default: all)")
    parser.add_argument("--lean", action="store_true", help="the earlier history: 6 request series")
    args = parser.parse_args()
    global LEAN
    LEAN = args.lean

    from devtools.emulators import start_firestore
    from devtools.processes import free_port

    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    emulator = start_firestore(port, log_dir=log_dir)
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    os.environ["GOOGLE_CLOUD_PROJECT"] = "ion-ops-bench"
    os.environ["ION_LOG_LEVEL"] = "WARNING"
    try:
        run(args.quick, [w for w in args.windows.split(",") if w])
    finally:
        emulator.stop()


def seed_cost_and_health(today: date) -> None:
    """Two weeks of the cost and health capabilities' daily documents, stored by their own code,
    so the reports read cost and customer health as in production."""
    from decimal import Decimal

    from functions.cost.ledger import DayCost
    from functions.cost.snapshot_build import build_snapshot
    from functions.cost.store import FirestoreCostStore, day_to_doc
    from functions.health.run import RunSummary
    from functions.health.store import RUNS_COLLECTION, FirestoreHealthStore

    costs, health = FirestoreCostStore(), FirestoreHealthStore()
    history: dict[date, DayCost] = {}
    for back in range(15, 0, -1):
        day = today - timedelta(days=back)
        cost = history[day] = DayCost(day)
        for service, amount in {"Cloud Run": "41.20", "Firestore": "12.75", "Memorystore": "7.90"}.items():
            cost.by_service[service] = Decimal(amount)
            cost.total += Decimal(amount)
        costs.put_day(day_to_doc(cost))
        doc = build_snapshot(history, day, currency="USD").model_dump(mode="json")
        costs.put_snapshot(day, {**doc, "source": {"name": "bench", "fallback": False}})
        categories = {"healthy": 7_100 + back, "at_risk": 2_300, "churn_risk": 600 - back}
        summary = RunSummary(
            as_of=day,
            customers=sum(categories.values()),
            categories=categories,
            actions_fired={},
            notices_published=0,
            usage_queries=4,
            store_reads=0,
            reads_per_customer=1.79,
            seconds=49.0,
        )
        health.put_doc(RUNS_COLLECTION, day.isoformat(), summary.model_dump(mode="json"))


def seed_incidents(now: datetime) -> int:
    """Incident records as the fan-out keeps them: three a day for eight weeks (the trends' span),
    P1 to P4 in turn, most acknowledged and resolved, the last few open."""
    from shared.firestore import get_firestore

    targets = {
        "P1": (timedelta(minutes=15), timedelta(hours=4)),
        "P2": (timedelta(hours=1), timedelta(hours=24)),
        "P3": (timedelta(hours=4), timedelta(days=3)),
        "P4": (timedelta(hours=24), timedelta(days=7)),
    }
    severities = {"P1": "critical", "P2": "high", "P3": "medium", "P4": "low"}
    batch = get_firestore().batch()
    count = 56 * 3
    for i in range(count):
        priority = f"P{i % 4 + 1}"
        opened = now - timedelta(hours=8 * (count - i))
        respond, resolve = targets[priority]
        settled = i < count - 4
        acknowledged = opened + timedelta(minutes=5 + i % 40) if settled else None
        resolved = opened + timedelta(minutes=30 + 7 * (i % 30)) if settled else None
        batch.set(
            get_firestore().collection("incidents").document(f"bench-{i}"),
            {
                "id": f"bench-{i}",
                "priority": priority,
                "severity": severities[priority],
                "state": "resolved" if settled else "triggered",
                "title": f"bench incident {i}",
                "labels": {"service": "routing", "region": list(REGIONS)[i % 3]},
                "opened_at": opened,
                "acknowledged_at": acknowledged,
                "resolved_at": resolved,
                "respond_by": opened + respond,
                "resolve_by": opened + resolve,
                "escalation_level": 0,
                "timeline": [],
                "updated_at": resolved or opened,
            },
        )
        if i % 400 == 399:
            batch.commit()
            batch = get_firestore().batch()
    batch.commit()
    return count


def run(quick: bool, only: list[str] | None = None) -> None:
    from bench.snapshot_reads import snapshot_reads
    from devtools.metric_history import fold_as_of, write_history
    from functions.ingestion.settings import get_ingestion_settings
    from functions.reports.audiences import load_audiences
    from functions.reports.dashboard_build import build_dashboard
    from functions.reports.documents import FirestoreDocumentSource
    from functions.reports.incident_records import FirestoreIncidentSource
    from functions.reports.mail import render_report
    from functions.reports.panels import load_catalog
    from functions.reports.period import Period
    from functions.reports.render import FORMATS, render_view
    from functions.reports.report import build_report
    from functions.reports.settings import get_reports_settings
    from functions.reports.source import FirestoreAlertSource, StoreMetricSource
    from shared.metrics.build_reads import rollup_reads
    from shared.metrics.recording import previous_tail, raw_reads
    from shared.metrics.rule_reduce import unmerged_minutes

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    recent = now - timedelta(hours=12 if quick else 24)
    # As in production: the downsampler has folded the hours that closed more than the lateness
    # allowance and grace ago, and the last 2-3 hours are still minutes only.
    delay = timedelta(seconds=get_ingestion_settings().fold_delay_seconds)
    folded = (now - delay).replace(minute=0)
    if not quick:
        write_history(now - timedelta(days=7), recent, minute_of, every=10)
    write_history(recent, folded, minute_of, every=1)
    write_history(folded, now + timedelta(minutes=1), minute_of, every=1, fold=False)
    # The downsampler's last run (scheduled every 5 minutes), as long ago as it can be: the
    # provisional rule hours of the unfolded hours up to 3 minutes before it; the builds read the
    # minutes since from the rollups.
    fold_as_of(now - timedelta(minutes=5))
    tail = (now - folded) / timedelta(minutes=1)
    print(f"folded until {folded:%H:%M} (now {now:%H:%M}): the last {tail:.0f} minutes are minutes only")
    seed_cost_and_health(now.date())
    incidents_written = seed_incidents(now)
    print(
        f"history written and folded, {incidents_written} incidents stored, "
        f"in {time.perf_counter() - started:.1f} s"
    )

    counter = ReadCounter()
    counter.install()
    catalog = load_catalog()
    windows = only or (["1h", "24h"] if quick else ["1h", "24h", "7d"])
    print()
    print(f"load average before the builds: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"{'dashboard':<15}{'window':<8}{'raw ms':>10}{'reads':>8}{'mq':>4}{'before ms':>10}{'reads':>8}"
        + f"{'mq':>4}{'snaps ms':>10}{'reads':>8}{'mq':>4}{'unmerged':>10}{'reads':>8}{'mq':>4}"
        + f"{'rules ms':>10}{'reads':>8}{'mq':>4}"
        + "".join(f"{f + ' ms':>12}" for f in FORMATS)
        + f"{'html KB':>9}"
    )
    worst = 0.0
    for name, dashboard in catalog.dashboards.items():
        for window in windows:
            took_ms: dict[str, list[float]] = {
                "raw": [],
                "before": [],
                "snapshots": [],
                "unmerged": [],
                "rules": [],
            }
            read_counts: dict[str, int] = {}
            minute_queries: dict[str, int] = {}
            for _ in range(3):
                # Interleaved: the stored series, the tail as before, snapshots, minutes unmerged, as served.
                for mode, timings in took_ms.items():
                    before, queries = counter.documents, counter.minute_queries
                    t0 = time.perf_counter()
                    with contextlib.ExitStack() as stack:
                        if mode == "raw":
                            stack.enter_context(raw_reads())
                        elif mode == "before":
                            stack.enter_context(previous_tail())
                        elif mode == "unmerged":
                            stack.enter_context(unmerged_minutes())
                        if mode in ("raw", "before", "snapshots"):
                            stack.enter_context(snapshot_reads())
                        view = build_dashboard(
                            dashboard,
                            StoreMetricSource(),
                            FirestoreAlertSource(),
                            window=window,
                            region=None,
                            now=now,
                            incidents=FirestoreIncidentSource(),
                            documents=FirestoreDocumentSource(),
                        )
                    timings.append((time.perf_counter() - t0) * 1000)
                    read_counts[mode] = counter.documents - before
                    minute_queries[mode] = counter.minute_queries - queries
            renders = {}
            html_size = 0
            for fmt in FORMATS:
                timings = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    body = render_view(view, fmt, catalog)
                    timings.append(time.perf_counter() - t0)
                renders[fmt] = median(timings)
                if fmt == "html":
                    html_size = len(body.encode())
            total = median(took_ms["rules"]) / 1000 + renders["html"]
            worst = max(worst, total)
            print(
                f"{name:<15}{window:<8}"
                + "".join(
                    f"{median(took_ms[m]):>10.0f}{read_counts[m]:>8}{minute_queries[m]:>4}" for m in took_ms
                )
                + "".join(f"{renders[f] * 1000:>12.2f}" for f in FORMATS)
                + f"{html_size / 1024:>9.1f}",
                flush=True,
            )
    print(f"load average after the builds: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"\nslowest uncached dashboard (build + html): {worst * 1000:.0f} ms; built once per refresh slot")

    settings = get_reports_settings()
    audiences = load_audiences(settings.audiences_file, settings.dashboards_file)
    end = now.replace(minute=0)
    period = Period(
        kind="week",
        label="bench",
        time_zone="Etc/UTC",
        start=end - timedelta(days=7),
        end=end,
        previous_label="before",
        previous_start=end - timedelta(days=14),
        previous_end=end - timedelta(days=7),
    )
    print()
    print(
        f"{'report':<14}{'build ms':>10}{'reads':>8}{'render ms':>11}"
        f"{'html KB':>9}{'images KB':>11}{'total KB':>10}"
    )
    for name, audience in audiences.audiences.items():
        before = counter.documents
        t0 = time.perf_counter()
        with rollup_reads():  # as mailing builds it
            report = build_report(
                audience,
                period,
                catalog,
                StoreMetricSource(),
                FirestoreAlertSource(),
                documents=FirestoreDocumentSource(),
                now=now,
                incidents=FirestoreIncidentSource(),
            )
        built = time.perf_counter() - t0
        reads = counter.documents - before
        t0 = time.perf_counter()
        rendered = render_report(report, settings)
        rendering = time.perf_counter() - t0
        html_kb = len(rendered.html.encode()) / 1024
        images_kb = sum(len(i) for i in rendered.images.values()) / 1024
        print(
            f"{name:<14}{built * 1000:>10.0f}{reads:>8}{rendering * 1000:>11.0f}"
            f"{html_kb:>9.1f}{images_kb:>11.1f}"
            f"{rendered.size_bytes / 1024:>10.1f}"
        )
    print("(report render includes the first matplotlib import for the first audience)")


if __name__ == "__main__":
    main()
