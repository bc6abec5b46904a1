"""The alerts bench's state-store figures: evaluation cycles with 100 and 1,000 alerts against the
Firestore state store (``FirestoreStateStore`` on the Firestore emulator, as deployed) as it was
(every decision written: ``write_unchanged=True``) and as it is (changes only), beside the in-memory
store, in one run; and the Firestore operations each cycle costs, counted at the client."""

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

    def apply_all(self, rule: str, items: list[Any]) -> Any:
        self.applies += len(items)
        return self.store.apply_all(rule, items)

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


# Every figure of one store at one size: the cycle that creates every alert (pending), the one
# that fires them all, steady cycles (nothing changes) and the one that resolves them all.
Figures = dict[str, Any]


def _cycles(store: Any, firing: int, steady: int) -> Figures:
    from devtools.firestore_ops import FirestoreOps
    from functions.alerts.engine import Evaluator
    from functions.alerts.source import ReplaySource

    rule = p95_rule()
    rng = random.Random(3)
    source = ReplaySource()
    drop = 8 + steady  # the minute every series falls back under the threshold
    for s in range(firing):
        points = [
            (T0 + timedelta(seconds=15 * i), (150.0 if i < 4 * drop else 50.0) + rng.gauss(0, 5))
            for i in range(4 * (drop + 7))
        ]
        source.add("m", {"series": str(s)}, points)
    counting = CountingStore(store)
    evaluator = Evaluator(source, counting)
    out: Figures = {"steady_s": [], "steady_ops": []}

    def cycle(minute: int, moved: int) -> tuple[float, dict[str, int]]:
        with FirestoreOps() as ops:
            started = time.perf_counter()
            result = evaluator.run([rule], T0 + timedelta(minutes=minute))
            elapsed = time.perf_counter() - started
        assert not result.errors, result.errors
        assert len(result.transitions) == moved, (type(store).__name__, minute, len(result.transitions))
        return elapsed, {
            "writes": sum(ops.writes.values()),
            "reads": sum(ops.reads.values()),
            "queries": ops.queries,
        }

    out["pending_s"], out["pending_ops"] = cycle(5, 0)  # every alert new: pending
    out["fire_s"], out["fire_ops"] = cycle(7, firing)  # `for` over: every alert fires
    for c in range(steady):  # steady state: every alert still firing, values within a few %
        elapsed, ops = cycle(8 + c, 0)
        out["steady_s"].append(elapsed)
        out["steady_ops"].append(ops)
    out["resolve_s"], out["resolve_ops"] = cycle(drop + 6, firing)  # the 5m window all low: resolved
    return out


def store_cycles(sizes: tuple[int, ...] = (100, 1_000), steady: int = 5) -> dict[int, dict[str, Figures]]:
    """Per size, the same alerts through the in-memory store and, on one fresh Firestore emulator
    (emptied between runs), the store as it was (``write_unchanged=True``: every decision written,
    every state of the rule read) and as it is (changes only, open states only)."""
    from devtools.emulators import reset_firestore, start_firestore
    from devtools.processes import free_port
    from functions.alerts.state_store import FirestoreStateStore, MemoryStateStore
    from shared import firestore

    out: dict[int, dict[str, Figures]] = {
        n: {"in-memory": _cycles(MemoryStateStore(), n, steady)} for n in sizes
    }
    port = free_port()
    saved = {k: os.environ.get(k) for k in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    emulator = start_firestore(port, log_dir=Path(tempfile.mkdtemp(prefix="bench-alerts-")))
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = host = f"127.0.0.1:{port}"
        os.environ["GOOGLE_CLOUD_PROJECT"] = "ion-ops-bench"
        for n in sizes:
            for name, write_unchanged in (("every state (before)", True), ("changes only (now)", False)):
                firestore.reset_clients()
                # The project the client uses (settings may have been read before the variable).
                reset_firestore(host, firestore.get_firestore().project)
                out[n][name] = _cycles(FirestoreStateStore(write_unchanged=write_unchanged), n, steady)
    finally:
        emulator.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        firestore.reset_clients()
    return out


def _ops(ops: dict[str, int]) -> str:
    return f"{ops['queries']}q {ops['reads']:>5}r {ops['writes']:>5}w"


def print_store_cycles(sizes: tuple[int, ...] = (100, 1_000)) -> None:
    started = time.perf_counter()
    figures = store_cycles(sizes)
    load = os.getloadavg()[0]
    print(
        "state store per cycle (threshold rule, p95 over 5m, one alert per series; Firestore: one"
        " emulator, reads r / writes w / queries q counted at the client):"
    )
    for n, stores in figures.items():
        print(f"  {n} alerts:")
        print(
            f"    {'store':22s} {'steady (worst)':>19s}  {'ops per steady':>17s}  {'fires all':>9s}"
            f"  {'ops':>17s}  {'resolves all':>12s}  {'first (pending)':>15s}"
        )
        for name, row in stores.items():
            steady = statistics.mean(row["steady_s"])
            print(
                f"    {name:22s} {steady * 1000:9.1f} ms ({max(row['steady_s']) * 1000:6.0f})"
                f"  {_ops(row['steady_ops'][-1])}  {row['fire_s']:8.2f}s  {_ops(row['fire_ops'])}"
                f"  {row['resolve_s']:11.2f}s  {row['pending_s']:14.2f}s"
            )
    print(f"  ({time.perf_counter() - started:.0f} s; load average {load:.1f} on {os.cpu_count()} cores)")
