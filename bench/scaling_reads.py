"""The scaling decision with its reads, as the function runs it: 14 days of history for 3 regions
in a Firestore emulator (written through the ingestion writer and folded by the downsampler, so
the query API reads hourly rollups for the 14 days and minute rollups for the last two hours),
then ``run_cycle`` with the production ports (``QueryApiHistory``, ``FirestoreGuard``,
``FirestoreDecisionStore``) in dry-run, one run a minute as scheduled. Measured: a cold run in a
fresh process (imports, clients, first reads: the unflattering case), then warm runs of both
kinds: the refresh every 5 minutes (eight reads, 14 days hourly and the last 130 minutes) and the
minutes between (three reads of the last 15 minutes, the stored forecast followed).

    .venv/bin/python bench/scaling_reads.py    # starts a Firestore emulator unless one is set
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGIONS = {"us-central1": 1.0, "europe-west1": 0.6, "asia-southeast1": 0.3}
SERVICE = "persona-router"
AT = datetime(2026, 3, 16, 13, 0, 10, tzinfo=UTC)  # a refresh slot (every 5 minutes on the clock)
DAYS = 14
CAPACITY_RPM = 200.0


def load(region_scale: float, minute: datetime) -> float:
    """Requests per minute: a daily and weekly cycle (busy 08-18 UTC, quieter weekends)."""
    hour = minute.hour + minute.minute / 60
    daily = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.25
    weekly = 0.6 if minute.weekday() >= 5 else 1.0
    return 3000.0 * region_scale * daily * weekly


def write_history() -> None:
    """Every minute, as the collector and the persona service's OTLP export write: an hour's mean
    is over its minutes with data, so a history written every 5th minute would read as hours with
    too few minutes (unknown)."""
    from devtools.metric_history import MetricHistory, write_history

    def minute_of(history: MetricHistory, minute: datetime) -> None:
        for region, scale in REGIONS.items():
            rpm = load(scale, minute)
            labels = {"region": region, "service": SERVICE}
            history.increment("cloudrun.request.count", {**labels, "response_code_class": "2xx"}, minute, rpm)
            # The persona service's own export (what a region's last minute is followed from).
            served = {**labels, "http.response.status_code": "200"}
            history.observe_weighted("http.server.request.duration", served, minute, [0.03, 0.06], rpm / 2)
            instances = max(1.0, math.ceil(rpm / CAPACITY_RPM))
            cpu = 0.65 * rpm / (instances * CAPACITY_RPM)
            history.gauge("cloudrun.container.instance.count", labels, minute, instances)
            history.gauge("cloudrun.container.cpu.utilization", labels, minute, cpu)

    start = (AT - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    write_history(start, AT.replace(second=0, microsecond=0), minute_of)


def cycle(at: datetime) -> tuple[float, int]:
    """One scheduled run as the function makes it, dry-run; returns its seconds and decisions.
    Every decision must come from the seasonal forecast (made now on a refresh, followed from the
    refresh before between them): a fallback means the reads missed the hourly history, and
    ``held`` that no forecast was stored; the time measured would not be the production path's."""
    from functions.scaling.rules import active_rules
    from functions.scaling.service import decision_time, run_cycle
    from functions.scaling.settings import get_scaling_settings
    from functions.scaling.sources import FirestoreGuard, QueryApiHistory
    from functions.scaling.store import FirestoreDecisionStore
    from shared.clock import FrozenClock, set_clock

    set_clock(FrozenClock(at))  # the store's retention windows are relative to "now"
    started = time.perf_counter()
    at = decision_time(None, at)  # the minute decided, as the function floors it
    settings = get_scaling_settings()
    result = run_cycle(
        at=at,
        rules=active_rules(),
        settings=settings,
        history=QueryApiHistory(settings.route_service),
        guard=FirestoreGuard(),
        store=FirestoreDecisionStore(),
        scaler=None,
        announce=lambda record: None,
    )
    seconds = time.perf_counter() - started
    methods = {record.decision.region: record.decision.forecast.method for record in result.records}
    assert set(methods.values()) == {"seasonal"}, methods
    refreshed = at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)
    assert {record.decision.forecast_at for record in result.records} == {refreshed}
    return seconds, len(result.records)


def cold_run(at: datetime) -> tuple[float, float]:
    """A fresh interpreter: (seconds from process start to the end of the run, the run alone)."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from datetime import datetime\n"
        "import bench.scaling_reads as b\n"
        f"seconds, n = b.cycle(datetime.fromisoformat({at.isoformat()!r}))\n"
        "assert n == 3, n\n"
        "print(time.perf_counter() - t0, seconds)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ, capture_output=True, text=True, check=True
    )
    total, run = out.stdout.split()[-2:]
    return float(total), float(run)


def measure() -> None:
    from devtools.emulators import firestore_for_bench

    os.environ["ION_METRICS_UPDATES_TOPIC"] = ""
    os.environ["ION_SCALING_DRY_RUN"] = "true"
    with firestore_for_bench(ROOT / ".run" / "bench-logs"):
        if "--reuse" not in sys.argv:  # --reuse: the emulator at FIRESTORE_EMULATOR_HOST has it
            started = time.perf_counter()
            write_history()
            seconds = time.perf_counter() - started
            print(f"History: {DAYS} d x 3 regions x 3 metrics written and folded in {seconds:.0f} s")
        cold_total, cold_run_only = cold_run(AT)
        refresh: list[float] = []
        between: list[float] = []
        for k in range(1, 41):
            at = AT + timedelta(minutes=k)
            seconds, decided = cycle(at)
            assert decided == 3, decided
            (refresh if at.minute % 5 == 0 else between).append(seconds)
        print(
            f"Run for 3 regions with its reads, guard and 3 Firestore transactions, dry-run, one a minute "
            f"over {len(refresh) + len(between)} minutes (goal < 2 s):"
        )
        print(
            f"  refresh (every 5 min: 8 queries over {DAYS} d of hourly rollups and 130 minutes): warm "
            f"median {statistics.median(refresh):.2f} s, max {max(refresh):.2f} s over {len(refresh)} runs; "
            f"cold process {cold_run_only:.2f} s ({cold_total:.2f} s with the imports)"
        )
        print(
            f"  between (3 queries over the last 15 minutes, the stored forecast followed): warm median "
            f"{statistics.median(between):.2f} s, max {max(between):.2f} s over {len(between)} runs"
        )


if __name__ == "__main__":
    measure()
