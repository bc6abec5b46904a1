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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel

from shared.messages import AlertTransition

State = Literal["inactive", "pending", "firing", "resolved"]
STATES_COLLECTION = "alert_states"
OUTBOX_COLLECTION = "alert_transitions"
# Bounded retries for an alert that racing evaluations keep changing.
APPLY_ROUNDS = 12


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
    evaluated_at: AwareDatetime | None = None


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
    rule: Any, prior: AlertState | None, obs: Observation | None, now: datetime
) -> tuple[AlertState | None, AlertTransition | None]:
    """The next state of one alert, and the transition to publish if any.

    Returns ``(None, None)`` when nothing changes (nothing to write). An evaluation older than
    the stored one is ignored, so a slow, late evaluation never undoes a newer decision.
    """
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


Compute = Callable[[AlertState | None], tuple[AlertState | None, AlertTransition | None]]


class StateStore(Protocol):
    def snapshot(self, rule: str) -> dict[str, AlertState]: ...

    def apply(self, fingerprint: str, compute: Compute) -> AlertTransition | None: ...

    def all_states(self) -> list[AlertState]: ...


class MemoryStateStore:
    """States in a dict (backtest, tuning, bench); ``apply`` is atomic under a lock."""

    def __init__(self) -> None:
        self._states: dict[str, AlertState] = {}
        self._lock = threading.Lock()
        self.transitions: list[AlertTransition] = []

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        with self._lock:
            return {k: v for k, v in self._states.items() if v.rule == rule}

    def apply(self, fingerprint: str, compute: Compute) -> AlertTransition | None:
        with self._lock:
            new, moved = compute(self._states.get(fingerprint))
            if new is not None:
                self._states[fingerprint] = new
            if moved is not None:
                self.transitions.append(moved)
            return moved

    def all_states(self) -> list[AlertState]:
        with self._lock:
            return list(self._states.values())


class FirestoreStateStore:
    """States in Firestore ``alert_states/<fingerprint>``; each change is a transaction that
    re-reads the state, decides again and writes the state together with the transition in the
    outbox ``alert_transitions/<transition_id>`` (``published: false`` until Pub/Sub has it)."""

    concurrent_writes = 16  # alerts applied at once by the engine (each write is independent)

    def __init__(self) -> None:
        from shared.firestore import get_firestore

        self.client = get_firestore()

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = (
            self.client.collection(STATES_COLLECTION).where(filter=FieldFilter("rule", "==", rule)).stream()
        )
        return {doc.id: AlertState.model_validate(doc.to_dict()) for doc in docs}

    def all_states(self) -> list[AlertState]:
        return [
            AlertState.model_validate(doc.to_dict())
            for doc in self.client.collection(STATES_COLLECTION).stream()
        ]

    def apply(self, fingerprint: str, compute: Compute) -> AlertTransition | None:
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

        from shared.firestore import backoff

        ref = self.client.collection(STATES_COLLECTION).document(fingerprint)
        outbox = self.client.collection(OUTBOX_COLLECTION)
        # Optimistic concurrency, not a read-write transaction: read, decide, then write the state
        # only if it is still the version we read (create only if still absent), together with the
        # transition, in one atomic batch. A racer that lost re-reads and decides again, so two
        # evaluations never commit the same transition. Transactions hold read locks, and the
        # emulator breaks the deadlock of two writers of one document only by a 2 s lock timeout.
        for round_ in range(APPLY_ROUNDS):
            if round_:
                backoff(round_, base_delay=0.01, max_delay=0.5)
            snap = ref.get()
            prior = AlertState.model_validate(snap.to_dict()) if snap.exists else None
            new, moved = compute(prior)
            if new is None and moved is None:
                return None
            batch = self.client.batch()
            if new is not None:
                if snap.exists:
                    guard = self.client.write_option(last_update_time=snap.update_time)
                    batch.update(ref, new.model_dump(), option=guard)
                else:
                    batch.create(ref, new.model_dump())
            if moved is not None:
                batch.create(
                    outbox.document(moved.transition_id),
                    {
                        "transition": moved.model_dump(mode="json"),
                        "published": False,
                        "created_at": moved.evaluated_at,
                        "expire_at": moved.evaluated_at + timedelta(days=30),
                    },
                )
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
