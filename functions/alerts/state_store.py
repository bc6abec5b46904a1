"""Where the alert states live: the ``StateStore`` port, in memory (backtest, tuning, bench) and in
Firestore (production), each applying the state machine's decisions atomically per alert."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from functions.alerts.state import KEEP_CYCLE, OPEN, OUTBOX_KEEP, AlertState, RuleCycle, to_us
from shared.messages import AlertTransition

STATES_COLLECTION = "alert_states"
OUTBOX_COLLECTION = "alert_transitions"
CYCLES_COLLECTION = "alert_cycles"
# Bounded retries for an alert that racing evaluations keep changing.
APPLY_ROUNDS = 12

# ``compute(state, cycle)``: the next state and transition from the stored state and the rule's
# cycle record, both as just read; ``(None, None)`` writes nothing.
Compute = Callable[[AlertState | None, RuleCycle | None], tuple[AlertState | None, AlertTransition | None]]


class StateStore(Protocol):
    # True only for the bench's baseline: every decision written, no cycle record (as before).
    write_unchanged: bool

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        """Every stored state of ``rule``."""
        ...

    def open_states(self, rule: str, limit: int | None = None) -> dict[str, AlertState]:
        """The pending and firing states of ``rule``: all a cycle reads besides what it observes
        (the first ``limit`` by fingerprint, if given)."""
        ...

    def fired(self, transition_ids: list[str]) -> dict[str, AlertTransition]:
        """The transitions of the outbox among ``transition_ids`` (each kept ``OUTBOX_KEEP``)."""
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

    def open_states(self, rule: str, limit: int | None = None) -> dict[str, AlertState]:
        with self._lock:
            found = {k: v for k, v in self._states.items() if v.rule == rule and v.state in OPEN}
            return {k: found[k] for k in sorted(found)[:limit]}

    def fired(self, transition_ids: list[str]) -> dict[str, AlertTransition]:
        wanted = set(transition_ids)
        with self._lock:
            return {t.transition_id: t for t in self.transitions if t.transition_id in wanted}

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
        self, rule: str | None = None, states: tuple[str, ...] | None = None, limit: int | None = None
    ) -> dict[str, AlertState]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query: Any = self.client.collection(STATES_COLLECTION)
        if rule is not None:
            query = query.where(filter=FieldFilter("rule", "==", rule))
        if states is not None:
            # Equality-like filters only: Firestore merges the single-field indexes, no composite one.
            query = query.where(filter=FieldFilter("state", "in", list(states)))
        if limit is not None:
            query = query.limit(limit)  # in document id (fingerprint) order
        return {doc.id: AlertState.model_validate(doc.to_dict()) for doc in query.stream()}

    def snapshot(self, rule: str) -> dict[str, AlertState]:
        return self._states(rule)

    def open_states(self, rule: str, limit: int | None = None) -> dict[str, AlertState]:
        # Resolved and inactive states are not read: a cycle reaches one only when its alert is
        # active again (one read in apply), so label churn does not grow what every cycle reads.
        return self._states(rule, limit=limit) if self.write_unchanged else self._states(rule, OPEN, limit)

    def fired(self, transition_ids: list[str]) -> dict[str, AlertTransition]:
        outbox = self.client.collection(OUTBOX_COLLECTION)
        found = self.client.get_all([outbox.document(i) for i in transition_ids]) if transition_ids else []
        return {
            snap.id: AlertTransition.model_validate(snap.to_dict()["transition"])
            for snap in found
            if snap.exists
        }

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
        from google.api_core.exceptions import Aborted, AlreadyExists, FailedPrecondition, NotFound

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
        # Contention, as a transaction aborted by its racers: evaluating again may succeed.
        raise Aborted(f"alert {fingerprint} kept changing under {APPLY_ROUNDS} evaluations")

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
