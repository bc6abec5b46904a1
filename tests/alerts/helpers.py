"""Series and rules the alert tests share."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.alerts.rules import parse_rules

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def rule(**fields: Any) -> Any:
    base = {"name": "r", "metric": "m", "severity": "high", "annotations": {"summary": "value {value}"}}
    return parse_rules({"rules": [{**base, **fields}]})[0]


def noise(n: int, seed: int, level: float = 50.0, sigma: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, sigma) for _ in range(n)]


def times(n: int, interval: int = 300, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(seconds=i * interval) for i in range(n)]


def write_csv(path: Any, ts: list[datetime], values: list[float], fmt: str = "%Y-%m-%d %H:%M:%S") -> None:
    with open(path, "w") as handle:
        handle.write("timestamp,value\n")
        for t, v in zip(ts, values, strict=True):
            handle.write(f"{t.strftime(fmt)},{v:.4f}\n")
