"""What alert rules read, against the metric catalogue: a rule on a metric or label no producer
emits loads fine and then never fires, so this is checked before deploying (``make
check-config``) and by the tests, not at every evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from functions.alerts.rules import HeartbeatRule
from shared.metrics.catalogue import Catalogue, load_catalogue


def rule_reads(rule: Any) -> list[tuple[str, dict[str, str | None]]]:
    """(metric, label -> value or None) for everything ``rule`` reads: its grouping and matched
    labels, and for a ratio each part's own metric, required labels and matches."""
    base: dict[str, str | None] = {**dict.fromkeys(rule.group_by), **rule.match}
    ratio = getattr(rule, "ratio", None)
    if ratio is None:
        return [(rule.metric, base)]
    return [
        (part.metric or rule.metric, {**base, **dict.fromkeys(part.present), **part.match})
        for part in (ratio.numerator, ratio.denominator)
    ]


def catalogue_problems(rules: Iterable[Any], catalogue: Catalogue | None = None) -> list[str]:
    """Each metric, label or label value a rule reads that no producer emits, as
    ``rule 'NAME': problem``; empty when every rule can find data. Heartbeat rules read the
    scheduled jobs' heartbeats, not a metric, and are skipped."""
    known = catalogue or load_catalogue()
    problems: list[str] = []
    for rule in rules:
        if isinstance(rule, HeartbeatRule):
            continue
        for metric, labels in rule_reads(rule):
            problems += [f"rule {rule.name!r}: {p}" for p in known.check(metric, labels)]
    return list(dict.fromkeys(problems))
