"""One evaluation cycle: rules → observations (through a MetricSource) → state machine → transitions.

The same ``Evaluator`` runs in production (query API, Firestore, Pub/Sub) and in the backtest
and tuning (replay source, in-memory store, transitions collected): only the three objects
passed in differ.

Quiet series cost nothing per alert: a cycle claims the rule (its cycle record: a late cycle stops
here), reads the rule's pending and firing states once (one query) and runs the state machine on
that snapshot; only when it decides a change worth a write (``must_write``) does it read the state
again, decide again and write it conditionally. A steady firing alert is not written: the rule's
record of its newest completed cycle stands for it (``state.effective``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from functions.alerts.detector import AnomalyDetector
from functions.alerts.detector_config import DetectorConfig
from functions.alerts.rule_values import Key, label_key, ratio_values, rule_history, rule_values
from functions.alerts.rules import (
    AbsenceRule,
    AnomalyRule,
    HeartbeatRule,
    SloBurnRateRule,
    ThresholdRule,
    TrendRule,
    compare,
)
from functions.alerts.source import MetricSource, Query
from functions.alerts.state import OPEN, AlertState, Observation, RuleCycle, must_write, step
from functions.alerts.state_store import Compute, StateStore
from shared.logging import get_logger
from shared.messages import AlertTransition

log = get_logger("alerts.engine")


def retry_may_cure(exc: BaseException) -> bool:
    """Whether evaluating the rule again may succeed: a store or network down for now
    (``shared.transient``, or google-api-core's own ``if_transient_error``), or an error raised
    from one (Firestore's transaction gives up on ``Aborted`` with a ValueError from it). Any other
    failure is the rule's or its data's, and fails the same way next time."""
    from google.api_core.retry import if_transient_error

    from shared.transient import is_transient

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a cause chain may loop
        if is_transient(current) or if_transient_error(current):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


@dataclass
class CycleResult:
    evaluated_at: datetime
    rules: int = 0
    series: int = 0
    transitions: list[AlertTransition] = field(default_factory=list)
    # Each failing rule's exception, kept whole: its class tells whether a retry may cure it.
    failures: dict[str, Exception] = field(default_factory=dict)

    @property
    def errors(self) -> dict[str, str]:
        """Each failing rule's error, as the cycle's log line and its answer name it."""
        return {name: f"{type(exc).__name__}: {exc}" for name, exc in self.failures.items()}

    def transient_failures(self) -> dict[str, Exception]:
        """The failing rules a retry may cure (``retry_may_cure``)."""
        return {name: exc for name, exc in self.failures.items() if retry_may_cure(exc)}


@dataclass
class _Tracked:
    detector: AnomalyDetector
    last: datetime | None = None
    active: bool = False
    value: float | None = None
    threshold: float | None = None


class DetectorCache:
    """The anomaly detectors of this process, per rule and label set. A warm instance feeds each
    detector only the points it has not seen; a cold one rebuilds it from ``history``."""

    def __init__(self) -> None:
        self._tracked: dict[tuple[str, Key], _Tracked] = {}

    def get(self, rule: AnomalyRule, labels: dict[str, str]) -> _Tracked:
        key = (rule.name, label_key(labels))
        tracked = self._tracked.get(key)
        if tracked is None:
            config = DetectorConfig(
                direction=rule.direction, sensitivity=rule.sensitivity, time_zone=rule.zone_for(labels)
            )
            tracked = self._tracked[key] = _Tracked(AnomalyDetector(config))
        return tracked

    def last_seen(self, rule: AnomalyRule) -> datetime | None:
        times = [t.last for (name, _), t in self._tracked.items() if name == rule.name and t.last]
        return min(times) if times else None


class JobObserver(Protocol):
    """Observations of the scheduled jobs for heartbeat rules (``jobs.JobWatch`` in production)."""

    def observe(self, rule: HeartbeatRule, now: datetime) -> list[Observation]: ...


class Evaluator:
    def __init__(
        self,
        source: MetricSource,
        store: StateStore,
        publish: Callable[[AlertTransition], None] | None = None,
        detectors: DetectorCache | None = None,
        jobs: JobObserver | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.publish = publish
        self.detectors = detectors or DetectorCache()
        self.jobs = jobs

    # -- the cycle ------------------------------------------------------------------------------
    def run(self, rules: Iterable[Any], now: datetime) -> CycleResult:
        result = CycleResult(evaluated_at=now)
        for rule in rules:
            result.rules += 1
            try:
                observations = self.observe(rule, now)
                result.series += len(observations)
                result.transitions.extend(self.apply(rule, observations, now))
            except Exception as exc:
                log.exception("rule %s failed", rule.name, extra={"rule": rule.name})
                result.failures[rule.name] = exc
        return result

    def apply(self, rule: Any, observations: list[Observation], now: datetime) -> list[AlertTransition]:
        if not self.store.claim(rule.name, now):
            log.info("rule %s: a newer cycle already started on it; late cycle ignored", rule.name)
            return []
        write_all = self.store.write_unchanged
        snapshot = self.store.open_states(rule.name)
        by_fp = {rule.fingerprint(o.labels): o for o in observations}
        changing: list[tuple[str, Observation | None]] = []
        for fingerprint in sorted(set(by_fp) | {fp for fp, s in snapshot.items() if s.state in OPEN}):
            obs = by_fp.get(fingerprint)
            stored = snapshot.get(fingerprint)
            if obs is None and stored is not None and stored.state in OPEN and isinstance(rule, AbsenceRule):
                # Unseen for all of lookback, so absent still: lookback bounds which label sets
                # may start an alert, not how long a region may stay down before it "resolves".
                obs = Observation(stored.labels, 0.0, True, 0.0)
            # Whether an alert changes does not need the newest completed cycle: it only moves a
            # steady firing alert's last_active_at, and an alert that stops being active changes
            # either way. `apply` decides exactly, with the cycle record read beside the state.
            new, _ = step(rule, stored, obs, now)
            if new is not None and (write_all or must_write(stored, new)):
                changing.append((fingerprint, obs))
        overtaken: list[str] = []

        def decider(fingerprint: str, obs: Observation | None) -> Compute:
            def compute(
                fresh: AlertState | None, cycle: RuleCycle | None
            ) -> tuple[AlertState | None, AlertTransition | None]:
                if cycle is not None and cycle.claimed_at is not None and cycle.claimed_at > now:
                    overtaken.append(fingerprint)  # a newer cycle started on the rule: it decides
                    return None, None
                new, moved = step(rule, fresh, obs, now, cycle.completed_at if cycle is not None else None)
                if moved is None and new is not None and not (write_all or must_write(fresh, new)):
                    return None, None
                return new, moved

            return compute

        outcomes = self.store.apply_all(rule.name, [(fp, decider(fp, obs)) for fp, obs in changing])
        moved = [t for t in outcomes if t is not None]
        if self.publish is not None:
            for transition in moved:
                self.publish(transition)
        if overtaken:
            # Not every decision was applied, so this cycle cannot stand for the alerts it skipped.
            log.info("rule %s: overtaken by a newer cycle, %d alerts left to it", rule.name, len(overtaken))
        elif snapshot or changing:
            # A rule with nothing open needs no record of this cycle: no state stands on it.
            self.store.complete(rule.name, now)
        return moved

    # -- observations per kind -------------------------------------------------------------------
    def observe(self, rule: Any, now: datetime) -> list[Observation]:
        if isinstance(rule, ThresholdRule):
            return self._threshold(rule, now)
        if isinstance(rule, AbsenceRule):
            return self._absence(rule, now)
        if isinstance(rule, AnomalyRule):
            return self._anomaly(rule, now)
        if isinstance(rule, TrendRule):
            return self._trend(rule, now)
        if isinstance(rule, SloBurnRateRule):
            return self._burn_rate(rule, now)
        if isinstance(rule, HeartbeatRule):
            # Replays and backtests have no scheduled jobs: the rule observes nothing there.
            return self.jobs.observe(rule, now) if self.jobs is not None else []
        raise TypeError(f"unknown rule kind {type(rule).__name__}")

    def values(self, rule: Any, start: datetime, end: datetime) -> dict[Key, tuple[dict[str, str], float]]:
        """The rule's value per label set over the window ``start``..``end`` (a ratio if the rule has one)."""
        return rule_values(self.source, rule, start, end)

    def history(
        self, rule: Any, start: datetime, end: datetime, step: int
    ) -> list[tuple[dict[str, str], list[tuple[datetime, float]]]]:
        """The rule's value per label set and step over the window ``start``..``end`` (tuning)."""
        return rule_history(self.source, rule, start, end, step)

    def _threshold(self, rule: ThresholdRule, now: datetime) -> list[Observation]:
        out = []
        for labels, value in self.values(rule, now - rule.window, now).values():
            active = compare(value, rule.op, rule.threshold)
            hold = (
                not active
                and rule.clear_threshold is not None
                and not compare(value, "<=" if rule.op in (">", ">=") else ">=", rule.clear_threshold)
            )
            out.append(Observation(labels, value, active, rule.threshold, hold))
        return out

    def _absence(self, rule: AbsenceRule, now: datetime) -> list[Observation]:
        # Absence is of points, whatever the rule's agg: a gauge at 0 (or below) is present, and
        # one that reported only zeros and stopped is absent.
        points = rule.model_copy(update={"agg": "count"})
        known = self.values(points, now - rule.lookback, now)
        recent = self.values(points, now - rule.window, now)
        out = []
        for key, (labels, seen) in known.items():
            if seen <= 0:
                continue
            count = recent.get(key, (labels, 0.0))[1]
            out.append(Observation(labels, count, count <= 0, 0.0))
        return out

    def _trend(self, rule: TrendRule, now: datetime) -> list[Observation]:
        current = self.values(rule, now - rule.window, now)
        before = self.values(rule, now - rule.over - rule.window, now - rule.over)
        out = []
        for key, (labels, value) in current.items():
            if key not in before:
                continue
            old = before[key][1]
            if rule.change == "relative":
                if old == 0:
                    continue
                change = (value - old) / abs(old)
            else:
                change = (value - old) / (rule.over.total_seconds() / 3600)
            out.append(Observation(labels, change, compare(change, rule.op, rule.threshold), rule.threshold))
        return out

    def _burn_rate(self, rule: SloBurnRateRule, now: datetime) -> list[Observation]:
        budget = 1 - rule.objective
        cache: dict[timedelta, dict[Key, tuple[dict[str, str], float]]] = {}

        def burn(span: timedelta) -> dict[Key, tuple[dict[str, str], float]]:
            if span not in cache:
                cache[span] = ratio_values(self.source, rule, rule.ratio, now - span, now)
            return cache[span]

        observed: dict[Key, Observation] = {}
        for pair in rule.burn_windows:
            longs, shorts = burn(pair.long), burn(pair.short)
            for key, (labels, ratio) in longs.items():
                long_rate = ratio / budget
                short_rate = shorts.get(key, (labels, 0.0))[1] / budget
                fires = long_rate > pair.factor and short_rate > pair.factor
                obs = observed.get(key)
                if obs is None or (fires and not obs.active):
                    observed[key] = Observation(labels, long_rate, fires, pair.factor)
                elif not obs.active:
                    obs.value = max(obs.value or 0.0, long_rate)
        return list(observed.values())

    def _anomaly(self, rule: AnomalyRule, now: datetime) -> list[Observation]:
        step_seconds = int(rule.step.total_seconds()) if rule.step else 0
        oldest = now - rule.history
        seen = self.detectors.last_seen(rule)
        start = max(oldest, seen) if seen else oldest
        query = Query(
            metric=rule.metric,
            agg=rule.agg,
            start=start,
            end=now,
            step=step_seconds,
            labels=dict(rule.match),
            group_by=tuple(rule.group_by),
        )
        out = []
        for series in self.source.fetch(query):
            tracked = self.detectors.get(rule, series.labels)
            for at, value in series.points:
                if tracked.last is not None and at <= tracked.last:
                    continue
                if step_seconds and at + timedelta(seconds=step_seconds) > now:
                    break  # the step still filling up is decided at the next evaluation
                if not math.isfinite(value):
                    continue
                decision = tracked.detector.update(at, value)
                if decision.started:
                    # Why the detector spoke up: the trace an on-call engineer tunes by.
                    log.info(
                        "anomaly in %s started at %s",
                        rule.name,
                        at.isoformat(),
                        extra={"rule": rule.name, "labels": series.labels, "triggers": decision.triggers},
                    )
                tracked.last = at
                tracked.active = decision.anomalous
                tracked.value = value
                tracked.threshold = decision.threshold
            if tracked.last is not None:
                out.append(Observation(series.labels, tracked.value, tracked.active, tracked.threshold))
        return out
