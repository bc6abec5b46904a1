"""Replay a ``timestamp,value`` CSV through the alert engine (a public contract: its command line
and output are checked from outside).

    python -m functions.alerts.backtest --csv FILE [--detector anomaly|threshold] [options]

prints ``{"alerts": [{"start": TIMESTAMP, "end": TIMESTAMP|null}, ...]}`` with the timestamps
exactly as written in the file. The rows become a ``ReplaySource``; the engine evaluates the rule
at every row's time, in time order, with an in-memory state store: the same ``Evaluator``,
detector and state machine as production, so each decision sees only rows at or before it.
``start`` is the row at which the alert fired, ``end`` the row at which it resolved (null while
still firing at the end of the file).

Timestamps: ISO 8601 (``2024-03-04 10:15:00``, ``2024-03-04T10:15:00Z``, with an offset or
without one, read as UTC) or Unix seconds. Rows whose value is empty or not a finite number are
skipped. Exit status 2 with a message on stderr when the file cannot be used.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.alerts.rules import Annotations, AnomalyRule, ThresholdRule
from functions.alerts.source import ReplaySource
from shared.clock import parse_rfc3339

METRIC = "backtest"


class CsvError(ValueError):
    pass


def parse_time(text: str) -> datetime:
    raw = text.strip()
    try:
        number = float(raw)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number):
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    parsed = parse_rfc3339(raw)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_csv(path: str) -> tuple[list[datetime], list[float], list[str]]:
    """Rows in time order (stable for equal times): times, values and the timestamps as written."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "timestamp" not in header or "value" not in header:
            raise CsvError(f"{path}: the header must name the columns timestamp and value (found {header})")
        t_col, v_col = header.index("timestamp"), header.index("value")
        rows: list[tuple[datetime, float, str]] = []
        for line, row in enumerate(reader, start=2):
            if len(row) <= max(t_col, v_col) or not row[t_col].strip():
                continue
            try:
                value = float(row[v_col])
            except ValueError:
                continue
            if not math.isfinite(value):
                continue
            try:
                at = parse_time(row[t_col])
            except ValueError:
                raise CsvError(f"{path} line {line}: {row[t_col]!r} is not a timestamp") from None
            rows.append((at, value, row[t_col]))
    if not rows:
        raise CsvError(f"{path}: no rows with a timestamp and a numeric value")
    rows.sort(key=lambda r: r[0])
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def median_interval(times: Sequence[datetime]) -> timedelta:
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times) if b > a)
    return timedelta(seconds=gaps[len(gaps) // 2] if gaps else 60)


@dataclass
class Alert:
    start: int
    end: int | None


def replay(rule: Any, times: Sequence[datetime], values: Sequence[float]) -> list[Alert]:
    """Evaluate ``rule`` at every distinct row time over the rows as a replay source; alerts by
    row index (start: the row at which it fired, end: the row at which it resolved)."""
    from functions.alerts.engine import Evaluator
    from functions.alerts.state_store import MemoryStateStore

    source = ReplaySource()
    source.add(rule.metric, {}, zip(times, values, strict=True))
    store = MemoryStateStore()
    evaluator = Evaluator(source, store)
    alerts: list[Alert] = []
    previous: datetime | None = None
    for index, now in enumerate(times):
        if now == previous:
            continue
        previous = now
        for moved in evaluator.run([rule], now).transitions:
            if moved.state == "firing":
                alerts.append(Alert(index, None))
            elif alerts and alerts[-1].end is None:
                alerts[-1].end = index
    return alerts


def build_rule(args: argparse.Namespace, interval: timedelta) -> Any:
    annotations = Annotations(summary="backtest")
    if args.detector == "anomaly":
        return AnomalyRule(
            kind="anomaly",
            name="backtest-anomaly",
            metric=METRIC,
            agg="avg",
            step=None,
            history=timedelta(days=args.history_days),
            direction=args.direction,
            sensitivity=args.sensitivity,
            time_zone=args.time_zone,
            severity="low",
            annotations=annotations,
        )
    if args.threshold is None:
        raise CsvError("--detector threshold needs --threshold")
    return ThresholdRule(
        name="backtest-threshold",
        metric=METRIC,
        agg=args.agg,
        window=args.window or interval,
        op=args.op,
        threshold=args.threshold,
        clear_threshold=args.clear_threshold,
        **{"for": args.for_ or "0s"},
        keep_firing_for=args.keep_firing_for or "0s",
        severity="low",
        annotations=annotations,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m functions.alerts.backtest", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--csv", required=True, help="a CSV with the header timestamp,value")
    p.add_argument("--detector", choices=["anomaly", "threshold"], default="anomaly")
    anomaly = p.add_argument_group("anomaly detector")
    anomaly.add_argument(
        "--sensitivity", type=float, default=1.0, help="> 1 alerts more, < 1 less (default 1)"
    )
    anomaly.add_argument("--direction", choices=["both", "up", "down"], default="both")
    anomaly.add_argument(
        "--time-zone",
        help="IANA zone whose local clock the daily pattern follows, like America/New_York (default: UTC)",
    )
    anomaly.add_argument(
        "--history-days", type=float, default=3650.0, help="points the detector may look back on"
    )
    threshold = p.add_argument_group("threshold rule")
    threshold.add_argument("--op", choices=[">", "<", ">=", "<="], default=">")
    threshold.add_argument("--threshold", type=float)
    threshold.add_argument("--clear-threshold", type=float, help="hysteresis bound")
    threshold.add_argument("--for", dest="for_", help="like 0s, 10m (default 0s)")
    threshold.add_argument("--keep-firing-for", help="like 0s, 30m (default 0s)")
    threshold.add_argument("--window", help="aggregation window (default: the row interval)")
    threshold.add_argument(
        "--agg",
        default="avg",
        choices=["count", "sum", "rate", "avg", "min", "max", "p50", "p90", "p95", "p99"],
    )
    return p


def _logs_to_stderr() -> None:
    """stdout carries the JSON answer only; the engine's log lines go to stderr."""
    import logging

    from shared.logging import get_logger

    get_logger("alerts.backtest")  # configures the "ion" logger once
    root = logging.getLogger("ion")
    handler = logging.StreamHandler(sys.stderr)
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _logs_to_stderr()
    try:
        times, values, written = read_csv(args.csv)
        rule = build_rule(args, median_interval(times))
    except (CsvError, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    alerts = replay(rule, times, values)
    out = {
        "alerts": [
            {"start": written[a.start], "end": None if a.end is None else written[a.end]} for a in alerts
        ]
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
