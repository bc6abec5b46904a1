"""The alerts bench's cost figures: evaluation time per cycle against the number of series (in
memory), the anomaly detector's cost and state per series, and an anomaly rule's cycle."""

from __future__ import annotations

import math
import random
import sys
import time
from collections import deque
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_data import T0  # noqa: E402
from functions.alerts.detector import AnomalyDetector  # noqa: E402


def speed(sizes: tuple[int, ...] = (100, 1_000, 10_000), cycles: int = 3) -> list[tuple[int, float]]:
    """Seconds per evaluation cycle of a threshold rule grouped per series (an error-rate style
    ratio would double the queries): replay source, in-memory state, a fifth of series firing."""
    from bench.alerts_store import p95_rule
    from functions.alerts.engine import Evaluator
    from functions.alerts.source import ReplaySource
    from functions.alerts.state_store import MemoryStateStore

    rule = p95_rule("bench")
    rng = random.Random(1)
    out = []
    for size in sizes:
        source = ReplaySource()
        for s in range(size):
            level = 150.0 if s % 5 == 0 else 50.0
            points = [
                (T0 + timedelta(seconds=15 * i), level + rng.gauss(0, 5)) for i in range(4 * (cycles + 6))
            ]
            source.add("m", {"series": str(s)}, points)
        evaluator = Evaluator(source, MemoryStateStore())
        evaluator.run([rule], T0 + timedelta(minutes=5))  # states created (pending)
        started = time.perf_counter()
        for c in range(cycles):
            evaluator.run([rule], T0 + timedelta(minutes=6 + c))
        out.append((size, (time.perf_counter() - started) / cycles))
    return out


def _deep_size(root: object) -> int:
    """Bytes held by an object graph (each object counted once): the detector's state."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return total


def seasonal_counts(n: int, interval: int, seed: int) -> list[float]:
    """Request counts per step with a daily cycle, Poisson-like noise and a few bursts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hour = (i * interval / 3600) % 24
        mean = 400 * (0.2 + 0.8 * max(0.0, math.sin(math.pi * (hour - 6) / 16)))
        value = rng.gauss(mean, math.sqrt(mean) + 0.05 * mean) * (3 if rng.random() < 0.005 else 1)
        out.append(float(max(0, round(value))))
    return out


def detector_cost(days: tuple[int, ...] = (1, 7, 28, 60), interval: int = 300) -> list[dict[str, float]]:
    """Per series: the time to rebuild a detector from history (a cold instance), the time of one
    more point (a warm one: mean and the worst of 300, which includes the periodic seasonality
    check), and the state kept, after ``days`` of 5-minute points."""
    out = []
    for span in days:
        n = span * 86400 // interval
        values = seasonal_counts(n + 300, interval, seed=span)
        ts = [T0 + timedelta(seconds=interval * i) for i in range(n + 300)]
        detector = AnomalyDetector()
        # CPU time of this process: what an instance spends, whatever else shares the machine.
        started = time.process_time()
        for t, v in zip(ts[:n], values[:n], strict=True):
            detector.update(t, v)
        rebuild = time.process_time() - started
        each = []
        for t, v in zip(ts[n:], values[n:], strict=True):
            started = time.process_time()
            detector.update(t, v)
            each.append(time.process_time() - started)
        out.append(
            {
                "days": span,
                "points": n,
                "rebuild_s": rebuild,
                "update_us": 1e6 * sum(each) / len(each),
                "update_max_us": 1e6 * max(each),
                "state_kb": _deep_size(detector) / 1024,
            }
        )
    return out


def anomaly_cycle(
    sizes: tuple[int, ...] = (100, 1_000), cycles: int = 3, days: int = 7
) -> list[tuple[int, float]]:
    """Seconds per evaluation cycle of an anomaly rule (5-minute steps, one detector per series)
    on a warm instance: every detector already holds ``days`` of history and takes one new step
    per cycle. The detectors are copies of one warmed detector (building 1,000 from scratch is
    the cold case, ``rebuild_s`` above per series)."""
    import copy

    from functions.alerts.engine import DetectorCache, Evaluator
    from functions.alerts.rules import parse_rules
    from functions.alerts.source import ReplaySource
    from functions.alerts.state_store import MemoryStateStore

    rule = parse_rules(
        {
            "rules": [
                {
                    "name": "bench-anomaly",
                    "kind": "anomaly",
                    "metric": "m",
                    "agg": "avg",
                    "step": "5m",
                    "history": f"{days}d",
                    "group_by": ["series"],
                    "severity": "low",
                    "annotations": {"summary": "{value}"},
                }
            ]
        }
    )[0]
    interval = 300
    n = days * 86400 // interval
    values = seasonal_counts(n + cycles, interval, seed=11)
    ts = [T0 + timedelta(seconds=interval * i) for i in range(n + cycles)]
    warm = AnomalyDetector()
    for t, v in zip(ts[:n], values[:n], strict=True):
        warm.update(t, v)
    out = []
    for size in sizes:
        source = ReplaySource()
        cache = DetectorCache()
        for s in range(size):
            labels = {"series": str(s)}
            tracked = cache.get(rule, labels)
            tracked.detector, tracked.last = copy.deepcopy(warm), ts[n - 1]
            source.add("m", labels, list(zip(ts[n:], values[n:], strict=True)))
        evaluator = Evaluator(source, MemoryStateStore(), detectors=cache)
        started = time.process_time()
        for c in range(cycles):
            evaluator.run([rule], ts[n + c] + timedelta(seconds=interval + 1))
        out.append((size, (time.process_time() - started) / cycles))
        del cache, evaluator
    return out
