"""Alert tuning (the seeds' alert_tuning): from 7 days of history, per metric, baseline
statistics and sigma thresholds, each with its backtest.

Per series: outliers removed (beyond median ± 5 robust sigma, i.e. 1.4826 * MAD), then mean,
standard deviation, p95 and p99; a **stability score** 0-100 (100 / (1 + coefficient of
variation), scaled down by the share of outliers); thresholds at 1, 2 and 3 sigma (low, high,
critical) on the side the rule alerts on. Every proposed threshold, and the rule's current one,
is **backtested**: the history replayed through a threshold rule with the rule's ``for`` and
``keep_firing_for`` (the same engine as production): how often it would have fired and for how
long.

    python -m functions.alerts.tune --csv FILE [--op '>'] [--for 2m]   # one CSV series
    python -m functions.alerts.tune [--days 7] [--rules FILE]           # the rules' metrics (query API)

Both print the recommendations JSON. The scheduled job (``POST /v1/tune`` of evaluate_alerts)
runs the second form and stores the result in Firestore, a document per series
(``recommendation_store.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.alerts.backtest import CsvError, median_interval, read_csv, replay
from functions.alerts.durations import format_duration
from functions.alerts.rules import Annotations, ThresholdRule
from shared.metrics.fold import quantile


class Stats(BaseModel):
    points: int
    outliers: int
    mean: float
    std: float
    p95: float
    p99: float
    min: float
    max: float
    stability: float


class Backtest(BaseModel):
    threshold: float
    alerts: int
    firing_seconds: float
    firing_fraction: float
    longest_seconds: float


class Recommendation(BaseModel):
    metric: str
    rule: str | None = None
    labels: dict[str, str] = {}
    op: str
    window: str
    start: datetime
    end: datetime
    stats: Stats
    thresholds: dict[str, float]
    backtests: dict[str, Backtest]


def baseline(values: Sequence[float]) -> Stats:
    if not values:
        raise ValueError("no points to compute a baseline from")
    ordered = sorted(values)
    median = quantile(ordered, 0.5)
    mad = quantile(sorted(abs(v - median) for v in ordered), 0.5) * 1.4826
    kept = [v for v in ordered if abs(v - median) <= 5 * mad] if mad > 0 else list(ordered)
    mean = math.fsum(kept) / len(kept)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / max(1, len(kept) - 1))
    cv = std / abs(mean) if mean else (0.0 if std == 0 else math.inf)
    outlier_share = 1 - len(kept) / len(ordered)
    stability = 0.0 if math.isinf(cv) else 100 / (1 + cv) * (1 - outlier_share)
    return Stats(
        points=len(ordered),
        outliers=len(ordered) - len(kept),
        mean=mean,
        std=std,
        p95=quantile(kept, 0.95),
        p99=quantile(kept, 0.99),
        min=ordered[0],
        max=ordered[-1],
        stability=round(stability, 1),
    )


def sigma_thresholds(stats: Stats, op: str) -> dict[str, float]:
    sign = -1 if op in ("<", "<=") else 1
    return {name: stats.mean + sign * k * stats.std for name, k in (("low", 1), ("high", 2), ("critical", 3))}


def backtest_threshold(  # noqa: PLR0917 - a rule's fields
    times: Sequence[datetime],
    values: Sequence[float],
    op: str,
    threshold: float,
    hold: timedelta,
    keep: timedelta,
) -> Backtest:
    """Replay the history through a threshold rule (window = one point) in the real engine."""
    interval = median_interval(times)
    rule = ThresholdRule(
        name="tuning",
        metric="tuning",
        agg="avg",
        window=interval,
        op=op,  # type: ignore[arg-type]
        threshold=threshold,
        keep_firing_for=keep,
        severity="low",
        annotations=Annotations(summary="tuning"),
        **{"for": hold},
    )
    alerts = replay(rule, times, values)
    durations = [
        ((times[a.end] if a.end is not None else times[-1]) - times[a.start]).total_seconds() for a in alerts
    ]
    span = max((times[-1] - times[0]).total_seconds(), 1.0)
    return Backtest(
        threshold=threshold,
        alerts=len(alerts),
        firing_seconds=sum(durations),
        firing_fraction=round(sum(durations) / span, 5),
        longest_seconds=max(durations, default=0.0),
    )


def recommend(
    metric: str,
    times: Sequence[datetime],
    values: Sequence[float],
    *,
    op: str = ">",
    hold: timedelta = timedelta(0),
    keep: timedelta = timedelta(0),
    rule: Any | None = None,
    labels: dict[str, str] | None = None,
) -> Recommendation:
    stats = baseline(values)
    thresholds = sigma_thresholds(stats, op)
    if rule is not None and getattr(rule, "threshold", None) is not None:
        thresholds["current"] = float(rule.threshold)
    backtests = {name: backtest_threshold(times, values, op, t, hold, keep) for name, t in thresholds.items()}
    return Recommendation(
        metric=metric,
        rule=rule.name if rule is not None else None,
        labels=labels or {},
        op=op,
        window=format_duration(median_interval(times)),
        start=times[0],
        end=times[-1],
        stats=stats,
        thresholds=thresholds,
        backtests=backtests,
    )


def recommend_for_rules(
    rules: Sequence[Any], source: Any, now: datetime, days: float = 7
) -> list[Recommendation]:
    """Every threshold rule's series over the last ``days``, at the rule's window as step."""
    from functions.alerts.engine import Evaluator
    from functions.alerts.state_store import MemoryStateStore

    evaluator = Evaluator(source, MemoryStateStore())
    out: list[Recommendation] = []
    for rule in rules:
        if not isinstance(rule, ThresholdRule):
            continue
        step = int(rule.window.total_seconds())
        if days > 3:  # beyond the minute rollups' 72 h the store answers in hours
            step = max(step, 3600)
        history = evaluator.history(rule, now - timedelta(days=days), now, step)
        for labels, points in history:
            if len(points) < 10:
                continue
            times, values = [t for t, _ in points], [v for _, v in points]
            out.append(
                recommend(
                    rule.metric,
                    times,
                    values,
                    op=rule.op,
                    hold=rule.for_,
                    keep=rule.keep_firing_for,
                    rule=rule,
                    labels=labels,
                )
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m functions.alerts.tune", description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", help="a timestamp,value CSV (else: the rules' metrics through the query API)")
    p.add_argument("--metric", default="csv")
    p.add_argument("--op", choices=[">", "<", ">=", "<="], default=">")
    p.add_argument("--for", dest="for_", default="0s")
    p.add_argument("--keep-firing-for", default="0s")
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--rules", help="rules file (default ION_RULES_FILE or the bundled rules.yaml)")
    args = p.parse_args(argv)
    from functions.alerts.backtest import _logs_to_stderr
    from functions.alerts.durations import parse_duration
    from functions.alerts.rules import load_rules

    _logs_to_stderr()
    try:
        if args.csv:
            times, values, _ = read_csv(args.csv)
            recs = [
                recommend(
                    args.metric,
                    times,
                    values,
                    op=args.op,
                    hold=parse_duration(args.for_),
                    keep=parse_duration(args.keep_firing_for),
                )
            ]
        else:
            from functions.alerts.source import QueryApiSource
            from shared.clock import utcnow

            recs = recommend_for_rules(load_rules(args.rules), QueryApiSource(), utcnow(), args.days)
    except (CsvError, ValueError) as exc:
        print(f"tune: {exc}", file=sys.stderr)
        return 2
    json.dump({"recommendations": [r.model_dump(mode="json") for r in recs]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
