"""Recording rules: pre-aggregated hours, as Prometheus recording rules and Thanos downsampling
keep them, so that a week of a busy metric is read as a few series per hour instead of every
stored series of every bucket.

A rule (``recording_rules`` in ``catalogue.yaml``) names a metric and the labels it keeps
(``by``); every other label is aggregated away exactly as the query does it (counts and sums
added, minima and maxima taken, sketches merged), per kind. When the downsampler folds an hour
of the metric it also writes, per rule, one document holding the hour's series merged by the
rule's labels (``metric_rule_hours``, same fields as an hour rollup). A query is answered from a
rule when every label it filters on or groups by is one the rule keeps and it does not combine
series after aggregating them (``across``): the answer is then the same, because every label the
query looks at is kept as it was. Queries are matched to rules here, never panel by panel.

Completeness: ``metric_folds/{metric_id}.rules`` maps each rule id to ``recorded_since``; hours in
``[recorded_since, folded_until)`` are complete in the rule's documents (an hour without one had
no data), earlier ones are read raw. The downsampler writes a rule's hours before it moves
``folded_until`` past them, and backfills earlier hours (lowering ``recorded_since``) from the
hour rollups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RULE_HOURS = "metric_rule_hours"
# Provisional rule hours of the hours not folded yet, each merging the minutes ``[t, through)``
# and valid only while their write stamp (``stamp``: count and sum, ``store.minutes_stamp``) holds.
RULE_TAIL = "metric_rule_tail"
TAIL_THROUGH = "through"
TAIL_STAMP = "stamp"
# ... and the digest of the rollups it merged with their stamps (``stamps.written_digest``), which a
# build checks against the hour's stamp documents instead of aggregating over the rollups.
TAIL_WRITTEN = "written"
# The fold state's map of rule id -> recorded_since.
RULES_FIELD = "rules"


class RecordingRule(BaseModel):
    """``metric`` aggregated by ``by`` (every other label summed away), recorded per hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1)
    by: tuple[str, ...] = Field(description="the labels kept; [] keeps none (the metric's total)")
    meaning: str = Field(min_length=1)

    @field_validator("by")
    @classmethod
    def _sorted_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"by repeats a label: {list(value)}")
        return tuple(sorted(value))

    @property
    def id(self) -> str:
        """Stable id of (metric, labels kept): a changed rule is a new rule, recorded afresh."""
        text = self.metric + "\x1d" + "\x1f".join(self.by)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def answers(self, filters: Iterable[str], group_by: Iterable[str], across: str | None) -> bool:
        """Whether a query filtering on ``filters`` and grouping by ``group_by`` gives the same
        answer from this rule's series as from the stored series."""
        return across is None and set(filters) | set(group_by) <= set(self.by)

    def kept(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels of the recorded series a stored series falls in (absent labels stay absent)."""
        return {k: labels[k] for k in self.by if k in labels}


def rule_hour_id(rule_id: str, hour: datetime) -> str:
    """Id of a rule's hour: ids of one rule sort by time, so a range of hours is an id range."""
    return f"{rule_id}-{int(hour.timestamp())}"


def recorded_key(labels: Mapping[str, str], kind: str) -> str:
    """Key of a recorded series in a rule hour's ``series`` map (labels and kind)."""
    text = kind + "\x1d" + "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@cache
def declared_rules() -> tuple[RecordingRule, ...]:
    """The catalogue's recording rules."""
    from shared.metrics.catalogue import load_catalogue

    return tuple(load_catalogue().recording_rules)


def rules_of(metric: str) -> list[RecordingRule]:
    return [rule for rule in declared_rules() if rule.metric == metric]


def rule_for(
    metric: str, filters: Iterable[str], group_by: Iterable[str], across: str | None
) -> RecordingRule | None:
    """The rule answering the query with the fewest labels kept (fewest series), or None."""
    if not _enabled.get():
        return None
    filters, group_by = list(filters), list(group_by)
    fitting = [rule for rule in rules_of(metric) if rule.answers(filters, group_by, across)]
    return min(fitting, key=lambda rule: (len(rule.by), rule.by), default=None)


@dataclass(frozen=True)
class FoldState:
    """What a reader needs of ``metric_folds/{metric_id}``."""

    folded_until: datetime
    recorded_since: Mapping[str, datetime]


def recorded_since(doc: Mapping[str, Any]) -> dict[str, datetime]:
    rules = doc.get(RULES_FIELD)
    if not isinstance(rules, dict):
        return {}
    return {rule: at for rule, at in rules.items() if isinstance(at, datetime)}


# Queries read raw rollups only inside ``raw_reads()``: the bench's side-by-side and the tests
# that compare the two paths.
_enabled: ContextVar[bool] = ContextVar("ion_recording_rules", default=True)


# The tail as read before stamp documents (each provisional hour checked by an aggregation over
# its minute rollups' write stamps, the minutes after it read with a range query over the minute
# rollups): only inside ``previous_tail()``, the bench's before-and-after.
_previous_tail: ContextVar[bool] = ContextVar("ion_previous_tail", default=False)


def reads_previous_tail() -> bool:
    return _previous_tail.get()


@contextmanager
def previous_tail() -> Iterator[None]:
    """Read the unfolded tail of this block's queries as before stamp documents (the bench only)."""
    token = _previous_tail.set(True)
    try:
        yield
    finally:
        _previous_tail.reset(token)


@contextmanager
def raw_reads() -> Iterator[None]:
    """Answer the queries of this block from the stored series, without recording rules."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)
