"""Alert evaluation bench: cost per cycle against the number of series, and detection quality of
the anomaly detector against a static 3-sigma rule on a labelled synthetic set. The code is split
by part: ``alerts_shapes.py`` and ``alerts_data.py`` (the generated set), ``alerts_quality.py``
(detectors and scoring), ``alerts_speed.py`` (cycle and detector cost), ``alerts_store.py`` (the
Firestore state store beside the in-memory one).

    .venv/bin/python bench/alerts.py            # both parts
    .venv/bin/python bench/alerts.py --quality  # only the detection quality
    .venv/bin/python bench/alerts.py --speed    # only the timing (in-memory state)
    .venv/bin/python bench/alerts.py --store    # 100 and 1,000 alerts: Firestore store before/now, in-memory
    .venv/bin/python bench/alerts.py --quality --quick --split tuning   # while tuning (small)

The generated set imitates cloud-monitoring exports and is calibrated so that a static 3-sigma
rule scores strongly negative, as it does on real data: heavy-tailed noise, bursts, scheduled jobs
and partial scrapes that are not incidents, sparse integer counts, flat-lines with blips,
daily/weekly cycles, benign drifts, CPU bounded at 0-100, rows missing and jittered timestamps,
5-30 min resolution, 4-60 days. Two splits with different seeds: tune on ``tuning``, report
``held-out``.

Quality is scored NAB-style: a window of 10% of the series length divided by its number of
anomalies is centred on each anomaly onset; the first alert *starting* in a window earns
2/(1+e^(5y)) - 1 (y = -1 at the window start, 0 at its end), a window without one costs -1,
an alert starting outside every window costs 0.11. Normalised so that no alerts scores 0 and a
detection at every window start scores 100.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.alerts_quality import SPLITS, quality
from bench.alerts_speed import anomaly_cycle, detector_cost, speed
from bench.alerts_store import print_store_cycles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--cost", action="store_true", help="only the detector's cost and state")
    parser.add_argument(
        "--store",
        action="store_true",
        help="only the state stores, 100 and 1,000 alerts (Firestore emulator: before / now)",
    )
    parser.add_argument("--quick", action="store_true", help="16 shorter series per split")
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--series", type=int, default=48, help="series per split")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    both = not (args.quality or args.speed or args.cost or args.store)
    if args.quality or both:
        count, max_rows = (16, 4000) if args.quick else (args.series, 17280)
        for split, seed in SPLITS.items():
            if args.split not in (split, "both"):
                continue
            started = time.perf_counter()
            results = quality(count, seed, args.verbose, max_rows)
            print(f"detection quality, {split} split ({count} generated series, seed {seed}), NAB-style:")
            for name, summary in results.items():
                print(f"  {name:18s} " + "  ".join(f"{k}={v}" for k, v in summary.items()))
            print(f"  ({time.perf_counter() - started:.1f} s)")
    if args.speed or both:
        print("evaluation time per cycle (threshold rule, p95 over 5m, one alert per series):")
        figures = speed()
        base_size, base_time = figures[0]
        for size, seconds in figures:
            per = seconds / size * 1e6
            ratio = seconds / base_time / (size / base_size)
            print(
                f"  {size:>6} series  {seconds * 1000:9.1f} ms/cycle  {per:6.1f} us/series"
                f"  (x{ratio:.2f} of linear)"
            )
    if args.store or both:
        print_store_cycles()
    if args.cost or both:
        print("anomaly detector per series (5-minute daily-seasonal counts; CPU time):")
        for row in detector_cost():
            print(
                f"  {row['days']:>3} days ({row['points']:>6} points): rebuild {row['rebuild_s']:6.2f} s"
                f"  ({1e6 * row['rebuild_s'] / row['points']:5.0f} us/point)"
                f"  update {row['update_us']:6.0f} us (worst of 300: {row['update_max_us'] / 1000:6.1f} ms)"
                f"  state {row['state_kb']:7.0f} KiB"
            )
        print(
            "anomaly rule, evaluation time per cycle on a warm instance (one new 5-minute step per series):"
        )
        for size, seconds in anomaly_cycle():
            print(
                f"  {size:>6} series  {seconds * 1000:9.1f} ms/cycle  {seconds / size * 1e6:6.1f} us/series"
            )


if __name__ == "__main__":
    main()
