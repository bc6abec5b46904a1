"""Cost snapshot bench: what the daily run reads from the export and how long it takes, the raw
query (before) and the aggregated one (now) side by side; month-end forecast error by day of month;
anomaly precision / recall against a fixed z-score rule, side by side, on generated billing exports.

Reading the export: a generated account (ION's two projects and another team's, hourly rows split
by a label into ``--label-split`` rows each, as labelled resources split them, tax, adjustments,
rounding), served by the BigQuery stand-in to the real google-cloud-bigquery client. Before: the
query this capability sent until 2026-12 (every project, raw rows, parsed one by one with pydantic,
days in UTC), kept here only for the comparison. Now: ``BigQueryBillingSource`` (ION's projects,
aggregated in SQL per Pacific day). The stand-in evaluates both queries in Python in the same
process: BigQuery does the aggregation on its side, so "now" pays here for work BigQuery does.

Each forecast scenario is a generated export (devtools/billing_export.py) over several months: a
weekday pattern, month boundaries, rows landing hours to days late, credits (some as late rows of
their own), and, in the "injected" scenarios, 3x single-day spikes and slow creeps (2-3% a day over
two weeks). Every day is replayed as the daily run would see it: as of that day (a Pacific day),
with only the rows landed by the run's time (09:00 Pacific the next day).

    .venv/bin/python bench/cost.py [--scenarios N] [--months M] [--label-split K] [--skip-forecast]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.billing_export import ION_PROJECTS, Creep, Spike, generate
from functions.cost.anomalies import AnomalyParams, detect, zscore_rule
from functions.cost.billing import BillingRow, parse_rows
from functions.cost.cost_lines import aggregate
from functions.cost.forecast import ForecastParams, forecast_month
from functions.cost.ledger import DayCost, days_between, fold, month_end

SERVICES = ("Cloud Run", "Cloud SQL", "Cloud Memorystore for Redis", "Cloud Logging", "Networking")
PACIFIC = ZoneInfo("America/Los_Angeles")
RESTATED = 3
BUCKETS = ((1, 5), (6, 9), (10, 15), (16, 20), (21, 25), (26, 31))


def rows_of(raw: list[dict[str, Any]]) -> list[BillingRow]:
    return parse_rows(enumerate((json.loads(json.dumps(r, default=str)) for r in raw), start=1))


def scenario(
    seed: int, first: date, last: date, injected: bool
) -> tuple[list[BillingRow], list[Spike], list[Creep]]:
    rng = random.Random(seed)
    spikes: list[Spike] = []
    creeps: list[Creep] = []
    if injected:
        days = days_between(first + timedelta(days=63), last)
        for _ in range(6):
            spikes.append(Spike(rng.choice(days), rng.choice(SERVICES), 3.0))
        start = rng.choice(days[:-20])
        creeps.append(
            Creep(
                start, 14, rng.choice(("Cloud Run", "Cloud Logging", "Networking")), rng.choice((0.02, 0.03))
            )
        )
    gen = generate(first, last, seed=seed, hours=6, late_share=0.08, spikes=spikes, creeps=creeps)
    return rows_of(gen.rows), spikes, creeps


def landed(rows: list[BillingRow], moment: datetime) -> list[BillingRow]:
    return [r for r in rows if r.export_time is None or r.export_time <= moment]


def run_time(day: date) -> datetime:
    """The daily run: 09:00 Pacific the day after the as-of day."""
    return datetime.combine(day + timedelta(days=1), dtime(9), tzinfo=PACIFIC).astimezone(UTC)


def days_of(rows: list[BillingRow], *, until: date, since: date | None = None) -> dict[date, DayCost]:
    return fold(aggregate(rows, PACIFIC), until=until, since=since)


# --- reading the export: before and now --------------------------------------------------------

# The query before 2026-12, kept here only to measure against: no project filter, raw rows.
BEFORE_QUERY = """
SELECT
  service,
  sku,
  usage_start_time,
  usage_end_time,
  location,
  CAST(cost AS NUMERIC) AS cost,
  currency,
  ARRAY(
    SELECT AS STRUCT c.name, CAST(c.amount AS NUMERIC) AS amount, c.type FROM UNNEST(credits) AS c
  ) AS credits,
  invoice,
  labels,
  export_time
FROM `{table}`
WHERE usage_start_time >= @since AND usage_start_time < @until
  AND _PARTITIONTIME >= TIMESTAMP_SUB(@since, INTERVAL 1 DAY)
ORDER BY usage_start_time
"""
TABLE = "billing-admin.billing.gcp_billing_export_v1_0A1B2C"


def split_by_label(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Each row as ``k`` rows of a label value (labelled resources split the export's rows)."""
    if k <= 1:
        return rows
    out = []
    for row in rows:
        for i in range(k):
            out.append(
                {
                    **row,
                    "labels": [*row.get("labels", []), {"key": "instance", "value": f"i-{i}"}],
                    "cost": row["cost"] / k,
                    "credits": [{**c, "amount": c["amount"] / k} for c in row.get("credits") or []],
                }
            )
    return out


def _timed(work: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def _peak_mib(work: Any) -> float:
    """Peak Python memory of ``work`` (a run of its own: tracemalloc slows what it traces)."""
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def export_read(label_split: int) -> None:
    import subprocess
    import tempfile

    from google.cloud import bigquery

    from devtools.billing_export import write_jsonl
    from devtools.processes import free_port, wait_until_port
    from functions.cost.ledger import day_start
    from functions.cost.sources import BigQueryBillingSource

    as_of = date(2026, 11, 18)
    first = as_of - timedelta(days=34)
    raw = generate(first - timedelta(days=3), as_of, hours=1, others=True, charges=True, late_share=0.0).rows
    rows = split_by_label(raw, label_split)
    # The stand-in in a process of its own, as BigQuery is: only the function's side is measured.
    folder = Path(tempfile.mkdtemp(prefix="cost-bench-"))
    port = free_port()
    standin = subprocess.Popen(
        [sys.executable, "-m", "devtools.bigquery_standin", "--port", str(port), "--table", TABLE,
         "--rows", str(write_jsonl(rows, folder / "export.jsonl")), "--allow-unfiltered"],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until_port(port, None, 120)
    source = BigQueryBillingSource(TABLE, projects=ION_PROJECTS, endpoint=f"http://127.0.0.1:{port}")
    client = source.client()

    def before(days: int = 35) -> tuple[int, dict[date, DayCost]]:
        since = datetime.combine(first, dtime(0), tzinfo=UTC)
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
                bigquery.ScalarQueryParameter("until", "TIMESTAMP", since + timedelta(days=days)),
            ],
            use_legacy_sql=False,
        )
        result = client.query_and_wait(BEFORE_QUERY.format(table=TABLE), job_config=config, wait_timeout=600)
        parsed = parse_rows((n, dict(r.items())) for n, r in enumerate(result, start=1))
        # Before: no project filter and UTC days (zone UTC reproduces the old fold).
        return len(parsed), fold(aggregate(parsed, ZoneInfo("UTC")), until=as_of, since=first)

    def now_(last: date = as_of) -> tuple[int, dict[date, DayCost]]:
        parsed = source.lines(first, last, month=as_of.strftime("%Y-%m"), zone=PACIFIC)
        return parsed.read, fold(parsed.lines, until=as_of, since=first)

    try:
        before(1), now_(first)  # warm: imports, connections
        (b_rows, b_days), b_s = _timed(before)
        (n_lines, n_days), n_s = _timed(now_)
        b_mib, n_mib = _peak_mib(before), _peak_mib(now_)
    finally:
        standin.terminate()
        standin.wait(30)
    ion = sum(1 for r in rows if r["project"]["id"] in ION_PROJECTS)
    b_total = sum(float(d.total) for d in b_days.values())
    n_total = sum(float(d.total) for d in n_days.values())
    print(
        f"reading the export, one daily run: {len(rows):,} export rows in the table (38 days, hourly, "
        f"each split {label_split}x by a label; ION's projects {ion:,}, another team's {len(rows) - ion:,}; "
        "generated data: it fits the generator's model)"
    )
    print(f"{'':<32} {'rows read':>10} {'seconds':>8} {'peak MiB':>9} {'35-day total':>13}")
    print(
        f"{'before: raw rows, every project':<32} {b_rows:>10,} {b_s:>8.2f} {b_mib:>9.1f} {b_total:>13,.2f}"
    )
    print(f"{'now: aggregated, ION projects':<32} {n_lines:>10,} {n_s:>8.2f} {n_mib:>9.1f} {n_total:>13,.2f}")
    print(
        f"rows read / {b_rows / max(n_lines, 1):.0f}; time x{n_s / b_s:.3f}; "
        f"peak memory x{n_mib / b_mib:.3f}; the before total counts another team's project, on UTC "
        f"days (a Pacific day starts at {day_start(first, PACIFIC):%H:%M} UTC); seconds include the "
        "stand-in's answer (the aggregation, BigQuery's work, is in 'now')\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", type=int, default=4)
    parser.add_argument(
        "--months", type=int, default=4, help="months scored per scenario (after 3 of history)"
    )
    parser.add_argument("--label-split", type=int, default=10, help="export rows per hourly usage row")
    parser.add_argument("--skip-forecast", action="store_true", help="only the export read")
    args = parser.parse_args()
    started = time.perf_counter()
    export_read(args.label_split)
    if args.skip_forecast:
        return 0

    first = date(2025, 9, 1)
    # Enough months: three of history, then the scored ones.
    month_firsts = []
    cursor = first
    for _ in range(3 + args.months):
        month_firsts.append(cursor)
        cursor = month_end(cursor) + timedelta(days=1)
    last = cursor - timedelta(days=1)
    scored_months = month_firsts[3:]

    fc_err: dict[tuple[int, int], list[float]] = defaultdict(list)
    naive_err: dict[tuple[int, int], list[float]] = defaultdict(list)
    inside: list[bool] = []
    within5_from10: list[bool] = []
    ours = {
        "tp": 0,
        "fp": 0,
        "spikes_found": 0,
        "spikes_same_run": 0,
        "spikes": 0,
        "creeps_found": 0,
        "creeps": 0,
    }
    zrule = dict(ours)
    normal_fp = {"ours": 0, "z": 0, "service_quarters": 0.0}
    delays: list[int] = []

    for index in range(args.scenarios * 2):
        injected = index % 2 == 0
        rows, spikes, creeps = scenario(100 + index, first, last, injected)
        full = days_of(rows, until=last)
        truth_days = {(s.day, s.service) for s in spikes}
        creep_days = {
            # a creep leaves the service at a higher level: flags until the 8-week baselines catch up count
            (c.start + timedelta(days=i), c.service): id(c)
            for c in creeps
            for i in range(c.days + 56)
        }
        flagged_ours: dict[tuple[date, str], date] = {}
        flagged_z: dict[tuple[date, str], date] = {}
        for month_first in scored_months:
            actual = float(
                sum(
                    c.total
                    for d, c in full.items()
                    if d.month == month_first.month and d.year == month_first.year
                )
            )
            for as_of in days_between(month_first, month_end(month_first)):
                seen = days_of(landed(rows, run_time(as_of)), until=as_of, since=as_of - timedelta(days=100))
                fc = forecast_month(seen, as_of, ForecastParams())
                bucket = next(b for b in BUCKETS if b[0] <= as_of.day <= b[1])
                if not injected:
                    err = (fc.total - actual) / actual * 100
                    fc_err[bucket].append(abs(err))
                    inside.append(fc.low <= actual <= fc.high)
                    mtd = sum(float(seen[d].total) for d in days_between(month_first, as_of) if d in seen)
                    naive = mtd / as_of.day * ((month_end(as_of) - month_first).days + 1)
                    naive_err[bucket].append(abs((naive - actual) / actual * 100))
                    if as_of.day >= 10:
                        within5_from10.append(abs(err) < 5)
                window = days_between(as_of - timedelta(days=RESTATED - 1), as_of)
                for a in detect(seen, window, AnomalyParams()):
                    flagged_ours.setdefault((a.date, a.service), as_of)
                for key in zscore_rule(seen, window):
                    flagged_z.setdefault(key, as_of)
        for flagged, tally in ((flagged_ours, ours), (flagged_z, zrule)):
            if not injected:
                normal_fp["ours" if tally is ours else "z"] += len(flagged)
                continue
            creeps_hit = set()
            for key in flagged:
                if key in truth_days:
                    tally["tp"] += 1
                elif key in creep_days:
                    tally["tp"] += 1
                    creeps_hit.add(creep_days[key])
                else:
                    tally["fp"] += 1
            in_scope = [s for s in spikes if s.day >= scored_months[0]]
            tally["spikes"] += len(in_scope)
            for s in in_scope:
                when = flagged.get((s.day, s.service))
                if when is not None:
                    tally["spikes_found"] += 1
                    tally["spikes_same_run"] += when == s.day
                    if tally is ours:
                        delays.append((when - s.day).days)
            in_scope_creeps = {id(c) for c in creeps if c.start >= scored_months[0]}
            tally["creeps"] += len(in_scope_creeps)
            tally["creeps_found"] += len(creeps_hit & in_scope_creeps)
        if not injected:
            normal_fp["service_quarters"] += len(SERVICES) * args.months / 3

    print(
        f"cost bench: {args.scenarios} normal + {args.scenarios} injected scenarios, "
        f"{args.months} scored months each"
    )
    print("\nmonth-end forecast, mean |error| % by day of month (normal scenarios)")
    print(f"{'days':>8} {'weekday model':>14} {'run-rate':>10}")
    for bucket in BUCKETS:
        if fc_err[bucket]:
            print(
                f"{bucket[0]:>3}-{bucket[1]:<4} {statistics.fmean(fc_err[bucket]):>14.2f} "
                f"{statistics.fmean(naive_err[bucket]):>10.2f}"
            )
    worst = max(max(v) for v in fc_err.values())
    print(
        f"within 5% from day 10: {sum(within5_from10)}/{len(within5_from10)} days "
        f"({100 * sum(within5_from10) / len(within5_from10):.1f}%); worst error any day {worst:.2f}%"
    )
    print(
        f"actual inside the band: {sum(inside)}/{len(inside)} days ({100 * sum(inside) / len(inside):.1f}%)"
    )

    print("\nanomalies (injected scenarios: 3x one-day spikes, 2-3%/day creeps over 14 days)")
    print(
        f"{'rule':<26} {'precision':>9} {'spike recall':>12} {'same run':>9} {'creeps':>7} "
        f"{'false/svc/quarter (normal)':>27}"
    )
    for name, tally, fp_key in (
        ("weekday median/MAD (ours)", ours, "ours"),
        ("z-score 14d, z>3", zrule, "z"),
    ):
        flagged = tally["tp"] + tally["fp"]
        precision = tally["tp"] / flagged if flagged else float("nan")
        print(
            f"{name:<26} {precision:>9.2f} {tally['spikes_found']:>5}/{tally['spikes']:<6} "
            f"{tally['spikes_same_run']:>5}/{tally['spikes']:<3} "
            f"{tally['creeps_found']:>3}/{tally['creeps']:<3} "
            f"{normal_fp[fp_key] / normal_fp['service_quarters']:>27.3f}"
        )
    if delays:
        print(
            f"spike found by the run of: the spike day {delays.count(0)}, the next day {delays.count(1)}, "
            f"later {len([d for d in delays if d > 1])}"
        )
    print(f"\n({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
