"""The alert state machine (its stores are in ``state_store.py``).

Per rule and label set (one *alert*, identified by its fingerprint)::

    inactive ──active──▶ pending ──active for `for`──▶ firing ──clear for `keep_firing_for`──▶ resolved
        ▲                  │ (for: 0s goes straight to firing)        ▲ (hysteresis: values between
        └──── not active ──┘                                          │  clear_threshold and threshold
    resolved ──active──▶ pending / firing (a new episode)            │  keep it firing)

Only ``firing`` and ``resolved`` are published (as ``AlertTransition``). ``step`` is pure: the
same function decides in production (a conditional Firestore write) and in the backtest (in
memory). A transition's id is ``<fingerprint>-<sequence>``: two evaluations that race from the
same stored state compute the same id, and the write's precondition lets only one commit it.

A state is written only when something that matters changes (``must_write``): its state, its
timers, whether a firing alert is active, its severity, or its value or threshold by more than
``VALUE_TOLERANCE``. What a skipped write would have said is known from the rule's cycle record
(``RuleCycle``): a pending or firing state not written since ``evaluated_at`` was seen unchanged by
every later cycle that completed the rule, so ``effective`` rebuilds ``evaluated_at`` and, for an
alert active when written, ``last_active_at`` from the newest completed cycle. The late-evaluation
guard is the cycle record's ``claimed_at``: a cycle no newer than one that already started on the
rule is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel

from functions.alerts.annotations import render
from shared.messages import AlertTransition

State = Literal["inactive", "pending", "firing", "resolved"]
OPEN: tuple[State, ...] = ("pending", "firing")
# Transitions stay in the outbox this long (fan-out keeps what it received as long).
OUTBOX_KEEP = timedelta(days=30)
# How long a quiet state is kept (TTL on ``expire_at``). An alert that has fired is kept longer
# than anything remembers its transition ids (the outbox and fan-out keep them 30 days), since a
# state that is gone restarts at ``<fingerprint>-1``; 5 more days cover TTL's deletion lag. One
# that never fired (pending, then inactive) names no transition: a day is enough to inspect it.
KEEP_FIRED = timedelta(days=35)
KEEP_NEVER_FIRED = timedelta(days=1)
# A rule's cycle record outlives its last cycle by this much (a deleted rule's record goes). Until
# then it is how a full cycle finds a rule gone, to close its open alerts (``retired_rules``).
KEEP_CYCLE = timedelta(days=35)
# A pending or firing alert's value or threshold is written again when it moves by more than this
# share of itself (or of the threshold, for values near zero); smaller moves are not worth a write.
VALUE_TOLERANCE = 0.1


class AlertState(BaseModel):
    fingerprint: str
    rule: str
    kind: str
    labels: dict[str, str] = {}
    state: State = "inactive"
    pending_since: AwareDatetime | None = None
    firing_since: AwareDatetime | None = None
    last_active_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    value: float | None = None
    threshold: float | None = None
    severity: str = "low"
    sequence: int = 0
    # When the state was last written (a cycle that changes nothing writes nothing; see effective).
    evaluated_at: AwareDatetime | None = None
    # TTL: set when the alert goes quiet (resolved, inactive), cleared when it is active again.
    expire_at: AwareDatetime | None = None


class RuleCycle(BaseModel):
    """The cycles of one rule (``alert_cycles/<rule>``): ``claimed_at``, the newest cycle that
    started applying it (an older one is late and ignored); ``completed_at``, the newest that
    applied every decision it made (every open state was seen by it as stored or written by it).
    Stored as epoch microseconds: Firestore's server-side maximum works on numbers only, and with it
    a cycle records itself in one write, no read, never retried."""

    rule: str
    claimed_us: int | None = None
    completed_us: int | None = None

    @property
    def claimed_at(self) -> datetime | None:
        return from_us(self.claimed_us)

    @property
    def completed_at(self) -> datetime | None:
        return from_us(self.completed_us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@dataclass
class Observation:
    """One series' condition at one evaluation. ``hold``: not active, but not cleared either
    (inside the hysteresis band), so a firing alert stays firing."""

    labels: dict[str, str]
    value: float | None
    active: bool
    threshold: float | None = None
    hold: bool = False


def step(
    rule: Any,
    prior: AlertState | None,
    obs: Observation | None,
    now: datetime,
    completed_at: datetime | None = None,
) -> tuple[AlertState | None, AlertTransition | None]:
    """The next state of one alert, and the transition to publish if any.

    ``prior`` is the state as stored and ``completed_at`` the newest cycle that completed the rule
    (``RuleCycle``), which tells what the writes skipped since would have said. Returns
    ``(None, None)`` when nothing changes. An evaluation no newer than the state is ignored, so a
    slow, late evaluation never undoes a newer decision. ``must_write`` says whether the returned
    state differs from ``prior`` in anything worth a write.
    """
    if prior is not None:
        prior = effective(prior, completed_at)
    new, moved = _next(rule, prior, obs, now)
    if new is not None:
        new = new.model_copy(update={"expire_at": expiry(new, now)})
    return new, moved


def effective(stored: AlertState, completed_at: datetime | None) -> AlertState:
    """The state as a cycle that rewrote every open alert would have left it, given the newest
    completed cycle. A pending or firing state is written only when something that matters changes,
    so every completed cycle after ``evaluated_at`` saw it as stored: still pending, or still firing,
    and still active if it was active when written (``last_active_at == evaluated_at``; a firing
    alert that stops being active is written then, with its last active time)."""
    if stored.state not in OPEN or completed_at is None or stored.evaluated_at is None:
        return stored
    if completed_at <= stored.evaluated_at:
        return stored
    update: dict[str, Any] = {"evaluated_at": completed_at}
    if stored.state == "firing" and _active_when_written(stored):
        update["last_active_at"] = completed_at
    return stored.model_copy(update=update)


def expiry(state: AlertState, now: datetime) -> datetime | None:
    """When a quiet state may be deleted (TTL); an open one is kept."""
    if state.state in OPEN:
        return None
    return now + (KEEP_FIRED if state.sequence else KEEP_NEVER_FIRED)


def _active_when_written(state: AlertState) -> bool:
    return state.last_active_at is not None and state.last_active_at == state.evaluated_at


def _moved(old: float | None, new: float | None, floor: float | None) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    scale = VALUE_TOLERANCE * abs(floor) if floor is not None and math.isfinite(floor) else 0.0
    return not math.isclose(old, new, rel_tol=VALUE_TOLERANCE, abs_tol=scale)


# Fields a cycle always writes when they change (the state machine's own).
_DECISIVE = (
    "state",
    "pending_since",
    "firing_since",
    "resolved_at",
    "sequence",
    "severity",
    "kind",
    "labels",
)


def must_write(stored: AlertState | None, new: AlertState) -> bool:
    """Whether ``new`` (``step``'s result from ``stored``) differs in anything worth a write: not
    ``evaluated_at`` alone, nor a firing alert's ``last_active_at`` moving while it stays active,
    nor the value or threshold moving by ``VALUE_TOLERANCE`` or less."""
    if stored is None:
        return True
    if any(getattr(stored, name) != getattr(new, name) for name in _DECISIVE):
        return True
    if new.state == "firing" and _active_when_written(stored) != _active_when_written(new):
        return True
    return _moved(stored.threshold, new.threshold, None) or _moved(stored.value, new.value, new.threshold)


def _next(
    rule: Any, prior: AlertState | None, obs: Observation | None, now: datetime
) -> tuple[AlertState | None, AlertTransition | None]:
    labels = obs.labels if obs else (prior.labels if prior else {})
    fingerprint = rule.fingerprint(labels)
    current: State = prior.state if prior else "inactive"
    if prior and prior.evaluated_at and now <= prior.evaluated_at:
        return None, None
    active = bool(obs and obs.active)
    hold = bool(obs and obs.hold)
    base = prior or AlertState(fingerprint=fingerprint, rule=rule.name, kind=rule.kind, labels=labels)
    update: dict[str, Any] = {"evaluated_at": now, "severity": rule.severity}
    if obs is not None:
        update["value"] = obs.value
        update["threshold"] = obs.threshold

    def fire(previous: State, since: datetime) -> tuple[AlertState, AlertTransition]:
        state = base.model_copy(
            update={
                **update,
                "state": "firing",
                "firing_since": now,
                "pending_since": since,
                "last_active_at": now,
                "resolved_at": None,
                "sequence": base.sequence + 1,
            }
        )
        return state, transition(rule, state, previous, now)

    if current in ("inactive", "resolved"):
        if not active:
            return None, None
        if rule.for_ <= timedelta(0):
            return fire(current, now)
        return base.model_copy(update={**update, "state": "pending", "pending_since": now}), None
    if current == "pending":
        if not active:
            return base.model_copy(update={**update, "state": "inactive", "pending_since": None}), None
        assert base.pending_since is not None
        if now - base.pending_since >= rule.for_:
            return fire("pending", base.pending_since)
        return base.model_copy(update=update), None
    # firing
    if active or hold:
        return base.model_copy(update={**update, "last_active_at": now}), None
    last_active = base.last_active_at or now
    if now - last_active < rule.keep_firing_for:
        return base.model_copy(update=update), None
    state = base.model_copy(
        update={**update, "state": "resolved", "resolved_at": now, "sequence": base.sequence + 1}
    )
    return state, transition(rule, state, "firing", now)


def transition(rule: Any, state: AlertState, previous: State, now: datetime) -> AlertTransition:
    # Every annotation is a template (a description or a dashboard link names the series too).
    annotations = {
        key: render(text, state.labels, state.value, state.threshold)
        for key, text in {"summary": rule.annotations.summary, **rule.annotations.extra()}.items()
    }
    return AlertTransition(
        transition_id=f"{state.fingerprint}-{state.sequence}",
        fingerprint=state.fingerprint,
        rule=rule.name,
        kind=rule.kind,
        state="firing" if state.state == "firing" else "resolved",
        previous_state=previous,
        severity=rule.severity,
        metric=rule.metric,
        labels={**state.labels, **rule.labels},
        annotations=annotations,
        runbook=list(rule.annotations.runbook),
        value=state.value,
        threshold=state.threshold,
        op=getattr(rule, "op", None),
        starts_at=state.firing_since or now,
        ends_at=state.resolved_at if state.state == "resolved" else None,
        evaluated_at=now,
    )
