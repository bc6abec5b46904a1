"""The alert state machine and where its states live.

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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel

from shared.messages import AlertTransition

State = Literal["inactive", "pending", "firing", "resolved"]
OPEN: tuple[State, ...] = ("pending", "firing")
STATES_COLLECTION = "alert_states"
OUTBOX_COLLECTION = "alert_transitions"
CYCLES_COLLECTION = "alert_cycles"
# Transitions stay in the outbox this long (fan-out keeps what it received as long).
OUTBOX_KEEP = timedelta(days=30)
# Bounded retries for an alert that racing evaluations keep changing.
APPLY_ROUNDS = 12
# How long a quiet state is kept (TTL on ``expire_at``). An alert that has fired is kept longer
# than anything remembers its transition ids (the outbox and fan-out keep them 30 days), since a
# state that is gone restarts at ``<fingerprint>-1``; 5 more days cover TTL's deletion lag. One
# that never fired (pending, then inactive) names no transition: a day is enough to inspect it.
KEEP_FIRED = timedelta(days=35)
KEEP_NEVER_FIRED = timedelta(days=1)
# A rule's cycle record outlives its last cycle by this much (a deleted rule's record goes).
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


def render(template: str, labels: dict[str, str], value: float | None, threshold: float | None) -> str:
    """``{value}``, ``{threshold}``, ``{labels}`` and ``{labels.NAME}`` in a summary; unknown
    placeholders are left as written."""
    text = template.replace("{value}", "n/a" if value is None else f"{value:.4g}")
    text = text.replace("{threshold}", "n/a" if threshold is None else f"{threshold:.4g}")
    for key, val in labels.items():
        text = text.replace("{labels." + key + "}", val)
    return text.replace("{labels}", ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all")


def transition(rule: Any, state: AlertState, previous: State, now: datetime) -> AlertTransition:
    annotations = {
        "summary": render(rule.annotations.summary, state.labels, state.value, state.threshold),
        **rule.annotations.extra(),
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


# ``compute(state, cycle)``: the next state and transition from the stored state and the rule's
# cycle record, both as just read; ``(None, None)`` writes nothing.
Compute = Callable[[AlertState | None, RuleCycle | None], tuple[AlertState | None, AlertTransition | None]]


class StateStore(Protocol):
    # True only for the bench's baseline: every decision written, no cycle record (as before).
    write_unchanged: bool

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        """Every stored state of ``rule``."""
        ...

    def open_states(self, rule: str) -> dict[str, AlertState]:
        """The pending and firing states of ``rule``: all a cycle reads besides what it observes."""
        ...

    def claim(self, rule: str, now: datetime) -> bool:
        """Record that the cycle at ``now`` starts on ``rule``; False when a newer cycle already
        did (this one is late)."""
        ...

    def complete(self, rule: str, now: datetime) -> None:
        """Record that the cycle at ``now`` applied every decision it made on ``rule``."""
        ...

    def cycles(self) -> dict[str, RuleCycle]: ...

    def apply(self, rule: str, fingerprint: str, compute: Compute) -> AlertTransition | None: ...

    def apply_all(self, rule: str, items: list[tuple[str, Compute]]) -> list[AlertTransition | None]:
        """``apply`` for every ``(fingerprint, compute)``, in order; a networked store batches them."""
        ...

    def all_states(self, state: str | None = None, rule: str | None = None) -> list[AlertState]: ...


class MemoryStateStore:
    """States in a dict (backtest, tuning, bench); ``apply`` is atomic under a lock."""

    write_unchanged = False

    def __init__(self) -> None:
        self._states: dict[str, AlertState] = {}
        self._cycles: dict[str, RuleCycle] = {}
        self._lock = threading.Lock()
        self.transitions: list[AlertTransition] = []

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        with self._lock:
            return {k: v for k, v in self._states.items() if v.rule == rule}

    def open_states(self, rule: str) -> dict[str, AlertState]:
        with self._lock:
            return {k: v for k, v in self._states.items() if v.rule == rule and v.state in OPEN}

    def claim(self, rule: str, now: datetime) -> bool:
        with self._lock:
            cycle = self._cycles.get(rule) or RuleCycle(rule=rule)
            claimed = max(cycle.claimed_us or 0, to_us(now))
            self._cycles[rule] = cycle.model_copy(update={"claimed_us": claimed})
            return claimed <= to_us(now)

    def complete(self, rule: str, now: datetime) -> None:
        with self._lock:
            cycle = self._cycles.get(rule) or RuleCycle(rule=rule)
            completed = max(cycle.completed_us or 0, to_us(now))
            self._cycles[rule] = cycle.model_copy(update={"completed_us": completed})

    def cycles(self) -> dict[str, RuleCycle]:
        with self._lock:
            return dict(self._cycles)

    def apply(self, rule: str, fingerprint: str, compute: Compute) -> AlertTransition | None:
        with self._lock:
            new, moved = compute(self._states.get(fingerprint), self._cycles.get(rule))
            if new is not None:
                self._states[fingerprint] = new
            if moved is not None:
                self.transitions.append(moved)
            return moved

    def apply_all(self, rule: str, items: list[tuple[str, Compute]]) -> list[AlertTransition | None]:
        return [self.apply(rule, fingerprint, compute) for fingerprint, compute in items]

    def all_states(self, state: str | None = None, rule: str | None = None) -> list[AlertState]:
        with self._lock:
            return [
                s
                for s in self._states.values()
                if (state is None or s.state == state) and (rule is None or s.rule == rule)
            ]


class FirestoreStateStore:
    """States in Firestore ``alert_states/<fingerprint>`` and each rule's cycle record in
    ``alert_cycles/<rule>``; changes re-read their states (and the record), decide again and write
    each state together with its transition in the outbox ``alert_transitions/<transition_id>``
    (``published: false`` until Pub/Sub has it), on the precondition that the state is unchanged.

    ``write_unchanged=True`` is the store as it was before cycle records (every decision written,
    every state of the rule read, one alert per batch): only the bench uses it, to measure the old
    cost beside the new."""

    concurrent_writes = 16  # batches committed at once (each is independent)
    # Alerts per batch: one read and one commit for up to this many changes (at most 2 writes each,
    # well under a batch's 500); a batch that loses a race is applied again one alert at a time.
    batch_alerts = 50

    def __init__(self, write_unchanged: bool = False) -> None:
        from shared.firestore import get_firestore

        self.client = get_firestore()
        self.write_unchanged = write_unchanged

    def _states(
        self, rule: str | None = None, states: tuple[str, ...] | None = None
    ) -> dict[str, AlertState]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query: Any = self.client.collection(STATES_COLLECTION)
        if rule is not None:
            query = query.where(filter=FieldFilter("rule", "==", rule))
        if states is not None:
            # Equality-like filters only: Firestore merges the single-field indexes, no composite one.
            query = query.where(filter=FieldFilter("state", "in", list(states)))
        return {doc.id: AlertState.model_validate(doc.to_dict()) for doc in query.stream()}

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        return self._states(rule)

    def open_states(self, rule: str) -> dict[str, AlertState]:
        # Resolved and inactive states are not read: a cycle reaches one only when its alert is
        # active again (one read in apply), so label churn does not grow what every cycle reads.
        return self._states(rule) if self.write_unchanged else self._states(rule, OPEN)

    def all_states(self, state: str | None = None, rule: str | None = None) -> list[AlertState]:
        return list(self._states(rule, (state,) if state else None).values())

    def cycles(self) -> dict[str, RuleCycle]:
        return {
            doc.id: RuleCycle.model_validate(doc.to_dict())
            for doc in self.client.collection(CYCLES_COLLECTION).stream()
        }

    def _record(self, rule: str, fields: dict[str, Any]) -> Any:
        """One write to the rule's cycle record, created if absent; its field transforms' results."""
        ref = self.client.collection(CYCLES_COLLECTION).document(rule)
        return ref.set({"rule": rule, **fields}, merge=True).transform_results

    def claim(self, rule: str, now: datetime) -> bool:
        if self.write_unchanged:
            return True
        from google.cloud.firestore_v1.transforms import Maximum

        # The server keeps the newest claim and says which it is: no read, no retry under contention.
        # (A late cycle's write still sets expire_at, a few seconds earlier: harmless.)
        newest = self._record(rule, {"claimed_us": Maximum(to_us(now)), "expire_at": now + KEEP_CYCLE})
        return int(newest[0].integer_value) <= to_us(now)

    def complete(self, rule: str, now: datetime) -> None:
        if self.write_unchanged:
            return
        from google.cloud.firestore_v1.transforms import Maximum

        self._record(rule, {"completed_us": Maximum(to_us(now))})

    def apply_all(self, rule: str, items: list[tuple[str, Compute]]) -> list[AlertTransition | None]:
        from concurrent.futures import ThreadPoolExecutor

        # The old store (the bench's baseline) wrote one alert per batch; so does it here.
        size = 1 if self.write_unchanged else self.batch_alerts
        chunks = [items[i : i + size] for i in range(0, len(items), size)]

        def one(chunk: list[tuple[str, Compute]]) -> list[AlertTransition | None]:
            if len(chunk) == 1:
                return [self.apply(rule, *chunk[0])]
            return self._apply_chunk(rule, chunk)

        workers = min(len(chunks), self.concurrent_writes)
        if workers <= 1:
            return [t for chunk in chunks for t in one(chunk)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [t for done in pool.map(one, chunks) for t in done]

    def _apply_chunk(self, rule: str, chunk: list[tuple[str, Compute]]) -> list[AlertTransition | None]:
        """Several alerts in one read and one atomic batch, each state on its own precondition;
        if any of them changed meanwhile the batch commits nothing and each is applied alone."""
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

        refs = [self.client.collection(STATES_COLLECTION).document(fp) for fp, _ in chunk]
        cycle_ref = self.client.collection(CYCLES_COLLECTION).document(rule)
        read = {s.reference.path: s for s in self.client.get_all([*refs, cycle_ref])}
        cycle_snap = read[cycle_ref.path]
        cycle = RuleCycle.model_validate(cycle_snap.to_dict()) if cycle_snap.exists else None
        batch = self.client.batch()
        moved: list[AlertTransition | None] = []
        for ref, (_, compute) in zip(refs, chunk, strict=True):
            snap = read[ref.path]
            new, transition = compute(
                AlertState.model_validate(snap.to_dict()) if snap.exists else None, cycle
            )
            self._stage(batch, ref, snap, new, transition)
            moved.append(transition)
        if len(batch) == 0:
            return moved
        try:
            batch.commit()
        except (FailedPrecondition, AlreadyExists, NotFound):
            return [self.apply(rule, fp, compute) for fp, compute in chunk]
        return moved

    def _stage(
        self, batch: Any, ref: Any, snap: Any, new: AlertState | None, moved: AlertTransition | None
    ) -> None:
        """The state's write on the precondition that it is the version read (created only if still
        absent), and the transition's outbox document (created only once)."""
        if new is not None:
            if snap.exists:
                guard = self.client.write_option(last_update_time=snap.update_time)
                batch.update(ref, new.model_dump(), option=guard)
            else:
                batch.create(ref, new.model_dump())
        if moved is not None:
            batch.create(
                self.client.collection(OUTBOX_COLLECTION).document(moved.transition_id),
                {
                    "transition": moved.model_dump(mode="json"),
                    "published": False,
                    "created_at": moved.evaluated_at,
                    "expire_at": moved.evaluated_at + OUTBOX_KEEP,
                },
            )

    def apply(self, rule: str, fingerprint: str, compute: Compute) -> AlertTransition | None:
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

        from shared.firestore import backoff

        ref = self.client.collection(STATES_COLLECTION).document(fingerprint)
        cycle_ref = None if self.write_unchanged else self.client.collection(CYCLES_COLLECTION).document(rule)
        # Optimistic concurrency, not a read-write transaction: read, decide, then write the state
        # only if it is still the version we read (create only if still absent), together with the
        # transition, in one atomic batch. A racer that lost re-reads and decides again, so two
        # evaluations never commit the same transition. Transactions hold read locks, and the
        # emulator breaks the deadlock of two writers of one document only by a 2 s lock timeout.
        # The cycle record is read with the state (one round trip) so that a cycle overtaken by a
        # newer one since it started stops writing.
        for round_ in range(APPLY_ROUNDS):
            if round_:
                backoff(round_, base_delay=0.01, max_delay=0.5)
            cycle: RuleCycle | None = None
            if cycle_ref is None:
                snap = ref.get()
            else:
                read = {s.reference.path: s for s in self.client.get_all([ref, cycle_ref])}
                snap, cycle_snap = read[ref.path], read[cycle_ref.path]
                if cycle_snap.exists:
                    cycle = RuleCycle.model_validate(cycle_snap.to_dict())
            prior = AlertState.model_validate(snap.to_dict()) if snap.exists else None
            new, moved = compute(prior, cycle)
            if new is None and moved is None:
                return None
            batch = self.client.batch()
            self._stage(batch, ref, snap, new, moved)
            try:
                batch.commit()
            except (FailedPrecondition, AlreadyExists, NotFound):
                continue  # someone else moved this alert first
            return moved
        raise RuntimeError(f"alert {fingerprint} kept changing under {APPLY_ROUNDS} evaluations")

    def unpublished(self, older_than: datetime) -> list[AlertTransition]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = (
            self.client.collection(OUTBOX_COLLECTION)
            .where(filter=FieldFilter("published", "==", False))
            .stream()
        )
        out = []
        for doc in docs:
            data = doc.to_dict()
            if data["created_at"] <= older_than:
                out.append(AlertTransition.model_validate(data["transition"]))
        return out

    def mark_published(self, transition_id: str) -> None:
        self.client.collection(OUTBOX_COLLECTION).document(transition_id).update({"published": True})
