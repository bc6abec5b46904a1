"""Scaling bench: the predictive policy against the baselines on generated per-minute traces,
scored by the platform model of the Scaling contract (14 days of warm-up), and the time of one
decision for 3 regions.

    .venv/bin/python bench/scaling.py              # quality on 3 traces + decision time
    .venv/bin/python bench/scaling.py --quick      # one trace, 28 days
    .venv/bin/python bench/scaling.py --variants   # the tuning variants side by side

Traces (functions/scaling/synthetic.py): daily seasonality with morning, lunch and evening
peaks, weekends at 55%, a slow trend (+0.6%/day), bursts (x1.8-3.5 for 5-40 min, 3 a week),
a 4-hour outage, a 6-hour gap and 1% of rows missing, counting noise plus 6% extra noise. Three
regions with their own time zone and seed. Policies:

- predictive: this capability's decision code, through the replay CLI's Replayer;
- reactive-only: min 0 (the platform's own autoscaler alone);
- static-p99: min fixed at the 99th percentile of needed instances over the first 14 days;
- seeds-rules: the seeds' time-of-day rules (08-09 and 12-13: min 4, max 150; 17-18: min 3,
  max 120; otherwise min 2, max 80) in the region's time zone;
- yesterday+week+15%: each hour, min = ceil(1.15 x the larger peak of needed instances in the
  same hour yesterday and a week ago).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from functions.scaling.forecast import HOUR, ForecastConfig, floor_hour
from functions.scaling.policy import PolicyConfig
from functions.scaling.replay import Replayer, Trace
from functions.scaling.scoring import Score, score
from functions.scaling.synthetic import TraceSpec, generate

CAPACITY = 200.0  # requests per minute per instance: the day peak needs about 15-20 instances
WARM_UP = timedelta(days=14)
REGIONS = (
    ("us-central1", "America/Chicago", 11),
    ("europe-west1", "Europe/Brussels", 23),
    ("asia-southeast1", "Asia/Singapore", 37),
)

Decisions = list[tuple[datetime, int, int]]


@dataclass
class Case:
    name: str
    trace: Trace


def make_cases(quick: bool) -> list[Case]:
    cases = []
    for region, zone, seed in REGIONS[:1] if quick else REGIONS:
        spec = TraceSpec(zone=zone, seed=seed, days=28 if quick else 42)
        minutes, requests = generate(spec)
        cases.append(Case(region, Trace(minutes=minutes, requests=requests, zone=ZoneInfo(zone))))
    return cases


def predictive(
    trace: Trace, forecast_config: ForecastConfig, policy_config: PolicyConfig, peaks: bool = True
) -> Decisions:
    replayer = Replayer(
        trace, CAPACITY, forecast_config=forecast_config, policy_config=policy_config, use_peaks=peaks
    )
    return [(d.at, d.min_instances, d.max_instances) for d in replayer.decisions()]


def reactive_only(trace: Trace) -> Decisions:
    return [(trace.minutes[0], 0, 1000)]


def needed(trace: Trace) -> list[int]:
    return [math.ceil(r / CAPACITY - 1e-9) for r in trace.requests]


def static_p99(trace: Trace) -> Decisions:
    end = trace.minutes[0] + WARM_UP
    first = sorted(n for m, n in zip(trace.minutes, needed(trace), strict=True) if m < end)
    return [(trace.minutes[0], first[int(0.99 * (len(first) - 1))], 1000)]


def seeds_rules(trace: Trace) -> Decisions:
    decisions: Decisions = []
    hour = floor_hour(trace.minutes[0])
    while hour <= trace.minutes[-1]:
        local = hour.astimezone(trace.zone).hour
        if local in (8, 12):
            decisions.append((hour, 4, 150))
        elif local == 17:
            decisions.append((hour, 3, 120))
        else:
            decisions.append((hour, 2, 80))
        hour += HOUR
    return decisions


def yesterday_week(trace: Trace) -> Decisions:
    peaks: dict[datetime, int] = {}
    for minute, n in zip(trace.minutes, needed(trace), strict=True):
        hour = floor_hour(minute)
        peaks[hour] = max(peaks.get(hour, 0), n)
    decisions: Decisions = []
    hour = floor_hour(trace.minutes[0])
    while hour <= trace.minutes[-1]:
        seen = [peaks[h] for h in (hour - 24 * HOUR, hour - 168 * HOUR) if h in peaks]
        decisions.append((hour, math.ceil(1.15 * max(seen)) if seen else 0, 1000))
        hour += HOUR
    return decisions


def evaluate(trace: Trace, decisions: Decisions) -> Score:
    return score(trace.minutes, trace.requests, CAPACITY, decisions, scored_from=trace.minutes[0] + WARM_UP)


def quality(cases: list[Case], variants: dict[str, tuple[ForecastConfig, PolicyConfig]]) -> None:
    baselines = {
        "reactive-only (min 0)": reactive_only,
        "static-p99 (first 14 d)": static_p99,
        "seeds' time-of-day rules": seeds_rules,
        "yesterday+week+15%": yesterday_week,
    }
    print(f"Quality: capacity {CAPACITY:.0f} req/min per instance, 14 days warm-up, platform model")
    print(
        f"{'policy':32} {'trace':16} {'under-min':>9} {'inst-min':>9} {'under/reactive':>14}", "cost/reactive"
    )
    totals: dict[str, list[float]] = {}
    for case in cases:
        reactive = evaluate(case.trace, reactive_only(case.trace))
        rows: list[tuple[str, Score]] = []
        for name, fn in baselines.items():
            rows.append((name, evaluate(case.trace, fn(case.trace))))
        for name, (fc, pc, *rest) in variants.items():
            started = time.perf_counter()
            rows.append((name, evaluate(case.trace, predictive(case.trace, fc, pc, *rest))))
            elapsed = time.perf_counter() - started
            print(f"  ({name}: replay and score of {len(case.trace.minutes):,} rows in {elapsed:.1f} s)")
        for name, result in rows:
            under, cost = result.ratios(reactive)
            totals.setdefault(name, [0, 0, 0, 0])
            totals[name][0] += result.under_minutes
            totals[name][1] += result.instance_minutes
            totals[name][2] += reactive.under_minutes
            totals[name][3] += reactive.instance_minutes
            print(
                f"{name:32} {case.name:16} {result.under_minutes:9,} {result.instance_minutes:9,} "
                f"{under:13.1%} {cost:12.2f}x"
            )
    print("All traces together:")
    for name, (under, cost, r_under, r_cost) in totals.items():
        print(
            f"{name:32} {'all':16} {int(under):9,} {int(cost):9,} {under / r_under:13.1%}",
            f"{cost / r_cost:12.2f}x",
        )


def decision_time(cases: list[Case]) -> None:
    """One decision per region, as the function makes it: 14 days of hourly means and the last
    two hours of minutes in memory (reading them is the function's I/O, measured in its tests)."""
    from functions.scaling.forecast import RECENT_MINUTES, History
    from functions.scaling.policy import Capacity, ScalingState, decide
    from functions.scaling.rules import active_rules

    ruleset = active_rules()
    prepared = []
    for case in cases:
        replayer = Replayer(case.trace, CAPACITY)
        decisions = replayer.decisions()
        for _ in range(14 * 288 + 100):  # warm the replayer up to day 14 and keep its state
            next(decisions)
        at = case.trace.minutes[0] + timedelta(days=14, hours=8, minutes=30)
        recent = {
            m: r
            for m, r in zip(case.trace.minutes, case.trace.requests, strict=True)
            if at - RECENT_MINUTES * timedelta(minutes=1) <= m < at
        }
        prepared.append(
            (
                case.name,
                History(hourly=dict(replayer.hourly), recent=recent, first_seen=case.trace.minutes[0]),
                at,
            )
        )
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        for region, history, at in prepared:
            decide(
                region=region,
                at=at,
                history=history,
                state=ScalingState(),
                bounds=ruleset.bounds(region, at),
                capacity=Capacity(rpm=CAPACITY, source="configured"),
                zone=ruleset.regions[region].zone,
            )
    per_round = (time.perf_counter() - started) / rounds
    print(
        f"Decision time for 3 regions (pure decision code, no I/O): {per_round * 1000:.1f} ms",
        "(with the reads: bench/scaling_reads.py)",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()
    cases = make_cases(args.quick)
    base_fc, base_pc = ForecastConfig(), PolicyConfig()
    variants = {"predictive (this policy)": (base_fc, base_pc)}
    if args.variants:
        variants.update(
            {
                "band q0.9 (wider)": (replace(base_fc, band_quantile=0.9), base_pc),
                "stabilisation 15 min": (base_fc, replace(base_pc, stabilisation=timedelta(minutes=15))),
                "hourly means only (no peaks)": (base_fc, base_pc, False),
            }
        )
    quality(cases, variants)
    decision_time(cases)


if __name__ == "__main__":
    main()
