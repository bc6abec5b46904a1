"""The alerts bench's state-store figures: evaluation cycles with 100 firing alerts against the
Firestore state store (``FirestoreStateStore`` on the Firestore emulator, as deployed) beside the
in-memory store, and the Firestore operations each cycle costs."""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.alerts_data import T0  # noqa: E402


class CountingStore:
    """A state store counting what the engine asks of it: per rule a claim, a query of its open
    states and a completion; per alert worth a write an ``apply`` (Firestore: a read and a
    conditional write)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.write_unchanged = store.write_unchanged
        self.concurrent_writes = getattr(store, "concurrent_writes", 1)  # as deployed
        self.snapshots = 0
        self.applies = 0

    def snapshot(self, rule: str) -> Any:
        return self.store.snapshot(rule)

    def open_states(self, rule: str) -> Any:
        self.snapshots += 1
        return self.store.open_states(rule)

    def claim(self, rule: str, now: Any) -> Any:
        return self.store.claim(rule, now)

    def complete(self, rule: str, now: Any) -> None:
        self.store.complete(rule, now)

    def cycles(self) -> Any:
        return self.store.cycles()

    def apply(self, rule: str, fingerprint: str, compute: Any) -> Any:
        self.applies += 1
        return self.store.apply(rule, fingerprint, compute)

    def all_states(self, state: str | None = None, rule: str | None = None) -> Any:
        return self.store.all_states(state, rule)


def p95_rule(name: str = "bench-store") -> Any:
    """The benches' threshold rule: p95 over 5 min above 100 for 2 min, one alert per series."""
    from functions.alerts.rules import parse_rules

    return parse_rules(
        {
            "rules": [
                {
                    "name": name,
                    "metric": "m",
                    "agg": "p95",
                    "window": "5m",
                    "op": ">",
                    "threshold": 100,
                    "for": "2m",
                    "group_by": ["series"],
                    "severity": "high",
                    "annotations": {"summary": "{value}"},
                }
            ]
        }
    )[0]


def _cycles(store: Any, firing: int, cycles: int) -> dict[str, Any]:
    from functions.alerts.engine import Evaluator
    from functions.alerts.source import ReplaySource

    rule = p95_rule()
    rng = random.Random(3)
    source = ReplaySource()
    for s in range(firing):
        points = [(T0 + timedelta(seconds=15 * i), 150.0 + rng.gauss(0, 5)) for i in range(4 * (cycles + 10))]
        source.add("m", {"series": str(s)}, points)
    counting = CountingStore(store)
    evaluator = Evaluator(source, counting)
    started = time.perf_counter()
    evaluator.run([rule], T0 + timedelta(minutes=5))  # every alert becomes pending
    pending = time.perf_counter() - started
    started = time.perf_counter()
    fired = evaluator.run([rule], T0 + timedelta(minutes=7))  # `for` over: every alert fires
    fire = time.perf_counter() - started
    assert len(fired.transitions) == firing, fired.errors
    counting.snapshots = counting.applies = 0
    times = []
    for c in range(cycles):  # steady state: every alert still firing
        started = time.perf_counter()
        result = evaluator.run([rule], T0 + timedelta(minutes=8 + c))
        times.append(time.perf_counter() - started)
        assert not result.errors, result.errors
        assert not result.transitions
    return {
        "pending_s": pending,
        "fire_s": fire,
        "cycle_s": statistics.mean(times),
        "cycle_max_s": max(times),
        "queries": counting.snapshots / cycles,
        "applies": counting.applies / cycles,
    }


def store_cycles(firing: int = 100, cycles: int = 5) -> dict[str, dict[str, Any]]:
    """The same 100 firing alerts through both stores; Firestore is a fresh emulator."""
    from devtools.emulators import start_firestore
    from devtools.processes import free_port
    from functions.alerts.state import FirestoreStateStore, MemoryStateStore
    from shared import firestore

    out = {"in-memory": _cycles(MemoryStateStore(), firing, cycles)}
    port = free_port()
    saved = {k: os.environ.get(k) for k in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    emulator = start_firestore(port, log_dir=Path(tempfile.mkdtemp(prefix="bench-alerts-")))
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
        os.environ["GOOGLE_CLOUD_PROJECT"] = "ion-ops-bench"
        firestore.reset_clients()
        out["firestore"] = _cycles(FirestoreStateStore(), firing, cycles)
    finally:
        emulator.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        firestore.reset_clients()
    return out


def print_store_cycles(firing: int = 100) -> None:
    figures = store_cycles(firing)
    print(f"state store, {firing} firing alerts (threshold rule, p95 over 5m, one alert per series):")
    memory = figures["in-memory"]["cycle_s"]
    for name, row in figures.items():
        steady, worst = row["cycle_s"] * 1000, row["cycle_max_s"] * 1000
        print(
            f"  {name:9s}  steady cycle {steady:8.1f} ms (worst {worst:7.1f} ms, "
            f"x{row['cycle_s'] / memory:6.1f} of in-memory)   the cycle that fires all "
            f"{row['fire_s'] * 1000:8.1f} ms   first cycle (all new) {row['pending_s'] * 1000:8.1f} ms"
        )
    row = figures["firestore"]
    print(
        f"  per steady cycle: {row['queries']:.0f} query + {row['applies']:.0f} read-and-conditional-write"
        " (each firing alert's state is rewritten every cycle: evaluated_at, value)"
    )
