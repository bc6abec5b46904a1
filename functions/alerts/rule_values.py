"""A rule's values read through a ``MetricSource``: per label set over a window (the last value
of each series, or a ratio of two selections summed per group), and per step for tuning. What the
evaluator's observations are computed from; no state, no decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from functions.alerts.rules import Ratio
from functions.alerts.source import MetricSource, Query
from shared.metrics.query_model import Series

Key = tuple[tuple[str, str], ...]


def label_key(labels: dict[str, str]) -> Key:
    return tuple(sorted(labels.items()))


def _last_value(series: Series) -> float | None:
    return series.points[-1][1] if series.points else None


def rule_values(
    source: MetricSource, rule: Any, start: datetime, end: datetime
) -> dict[Key, tuple[dict[str, str], float]]:
    """The rule's value per label set over the window ``start``..``end`` (a ratio if the rule has one)."""
    ratio: Ratio | None = getattr(rule, "ratio", None)
    if ratio is None:
        series = source.fetch(_query(rule, rule.metric, rule.match, [], start, end))
        return {label_key(s.labels): (s.labels, v) for s in series if (v := _last_value(s)) is not None}
    return ratio_values(source, rule, ratio, start, end)


def rule_history(
    source: MetricSource, rule: Any, start: datetime, end: datetime, step: int
) -> list[tuple[dict[str, str], list[tuple[datetime, float]]]]:
    """The rule's value per label set and step over the window ``start``..``end`` (tuning)."""
    ratio: Ratio | None = getattr(rule, "ratio", None)

    def fetch(selector: Any) -> dict[Key, dict[datetime, float]]:
        metric = selector.metric or rule.metric if selector else rule.metric
        match = selector.match if selector else {}
        present = selector.present if selector else []
        query = _query(rule, metric, match, present, start, end)
        query = Query(query.metric, query.agg, start, end, step, query.labels, query.group_by)
        totals: dict[Key, dict[datetime, float]] = {}
        for s in source.fetch(query):
            if any(not s.labels.get(name) for name in present):
                continue
            key = label_key({k: v for k, v in s.labels.items() if k in rule.group_by})
            bucket = totals.setdefault(key, {})
            for at, value in s.points:
                bucket[at] = bucket.get(at, 0.0) + value
        return totals

    if ratio is None:
        return [(dict(k), sorted(points.items())) for k, points in fetch(None).items()]
    numerators, denominators = fetch(ratio.numerator), fetch(ratio.denominator)
    out = []
    for key, totals in denominators.items():
        num = numerators.get(key, {})
        out.append((dict(key), [(t, num.get(t, 0.0) / d) for t, d in sorted(totals.items()) if d > 0]))
    return out


def _query(  # noqa: PLR0917 - mirrors Query's fields
    rule: Any, metric: str, match: dict[str, str], extra: list[str], start: datetime, end: datetime
) -> Query:
    return Query(
        metric=metric,
        agg=rule.agg,
        start=start,
        end=end,
        labels={**rule.match, **match},
        group_by=tuple(dict.fromkeys([*rule.group_by, *extra])),
    )


def _selected(
    source: MetricSource, rule: Any, selector: Any, start: datetime, end: datetime
) -> dict[Key, float]:
    series = source.fetch(
        _query(rule, selector.metric or rule.metric, selector.match, selector.present, start, end)
    )
    totals: dict[Key, float] = {}
    for s in series:
        value = _last_value(s)
        if value is None or any(not s.labels.get(name) for name in selector.present):
            continue
        key = label_key({k: v for k, v in s.labels.items() if k in rule.group_by})
        totals[key] = totals.get(key, 0.0) + value
    return totals


def ratio_values(
    source: MetricSource, rule: Any, ratio: Ratio, start: datetime, end: datetime
) -> dict[Key, tuple[dict[str, str], float]]:
    numerators = _selected(source, rule, ratio.numerator, start, end)
    denominators = _selected(source, rule, ratio.denominator, start, end)
    return {
        key: (dict(key), numerators.get(key, 0.0) / total) for key, total in denominators.items() if total > 0
    }
