"""Open alerts of rules removed from the rules file or disabled, through the real
``evaluate_alerts`` handler on the emulators: a broken rules file, an on-ingest evaluation and a
named-rule one close nothing; a full cycle resolves the firing alerts with a `resolved` transition
saying why (published as any other) and closes the pending ones unannounced, at most so many a
cycle, and a cycle again after that changes nothing; cycles racing make each resolve once."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from functions.alerts.engine import CycleResult, Evaluator
from functions.alerts.retired_rules import retire_gone_rules
from functions.alerts.source import Query, QueryApiSource, ReplaySource
from functions.alerts.state_store import OUTBOX_COLLECTION, FirestoreStateStore
from shared import clock
from shared.clock import FrozenClock
from shared.messages import AlertTransition, MetricsIngested
from shared.metrics.query_model import Series
from shared.topology import ROOT
from tests.alerts.helpers import T0, rule, times
from tests.conftest import PROJECT
from tests.pubsub_helpers import push_envelope

pytestmark = pytest.mark.emulators
M = timedelta(minutes=1)


DEPTH = """
  - name: queue-depth-high
    metric: queue.depth
    agg: max
    window: 5m
    op: ">"
    threshold: 100
    group_by: [region]
    labels: {team: queue}
    severity: critical
    annotations:
      summary: "queue depth {value} in {labels.region}"
      runbook: [drain the queue]
"""
AGE = """
  - name: queue-age-high
    metric: queue.age
    agg: max
    window: 5m
    op: ">"
    threshold: 60
    severity: high
    enabled: ENABLED
    annotations:
      summary: "oldest message {value}s"
"""
LAG = """
  - name: queue-lag-high
    metric: queue.lag
    agg: max
    window: 5m
    op: ">"
    threshold: 10
    for: 10m
    severity: low
    annotations:
      summary: "lag {value}"
"""
KEPT = """
  - name: disk-full
    metric: disk.used
    agg: max
    window: 5m
    op: ">"
    threshold: 0.9
    severity: high
    annotations:
      summary: "disk {value}"
"""
BROKEN = """
  - name: half-written
    metric: queue.depth
    severity: high
"""


def _write_rules(path: Path, *parts: str) -> None:
    path.write_text("rules:\n" + "".join(parts))
    # Rules are re-read when the file's mtime changes: make sure it does between two writes.
    bump = time.time() + len(path.read_text())
    os.utime(path, (bump, bump))


def _fetch(_source: QueryApiSource, query: Query) -> list[Series]:
    value = {"queue.depth": 500.0, "queue.age": 300.0, "queue.lag": 50.0}.get(query.metric, 0.1)
    label_sets = [{"region": "eu"}, {"region": "us"}] if "region" in query.group_by else [{}]
    return [Series(labels=labels, points=[(query.start, value)]) for labels in label_sets]


def _open(rule_name: str) -> dict[str, str]:
    return {s.labels.get("region", "-"): s.state for s in FirestoreStateStore().all_states(rule=rule_name)}


def test_a_full_cycle_of_the_handler_closes_the_alerts_of_rules_gone(
    fs: Any, emulators: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=publisher.topic_path(emulators.project, "alerts"))
    rules = tmp_path / "rules.yaml"
    monkeypatch.setenv("ION_RULES_FILE", str(rules))
    monkeypatch.setattr(QueryApiSource, "fetch", _fetch)
    monkeypatch.setattr("functions.alerts.retired_rules.RETIRE_PER_CYCLE", 2)
    frozen = FrozenClock(T0)
    clock.set_clock(frozen)
    client = functions_framework.create_app("evaluate_alerts", str(ROOT / "main.py")).test_client()
    ingest = functions_framework.create_app("evaluate_alerts_on_ingest", str(ROOT / "main.py")).test_client()

    def cycle(minute: int, body: dict[str, Any] | None = None) -> Any:
        frozen.set(T0 + minute * M)
        return client.post("/", json=body or {})

    _write_rules(rules, DEPTH, AGE.replace("ENABLED", "true"), LAG, KEPT)
    fired = cycle(0).json["transitions"]
    assert sorted((t["rule"], t["state"]) for t in fired) == [
        ("queue-age-high", "firing"),
        ("queue-depth-high", "firing"),
        ("queue-depth-high", "firing"),
    ]
    before = {
        "depth": _open("queue-depth-high"),
        "age": _open("queue-age-high"),
        "lag": _open("queue-lag-high"),
    }
    assert before == {
        "depth": {"eu": "firing", "us": "firing"},
        "age": {"-": "firing"},
        "lag": {"-": "pending"},
    }

    # A rules file that does not load is no rule set at all: the cycle fails, nothing is closed.
    _write_rules(rules, KEPT, BROKEN)
    assert cycle(1).status_code >= 500
    # Depth and lag removed, age disabled.
    _write_rules(rules, AGE.replace("ENABLED", "false"), KEPT)
    # Part of the rule set: an update of a removed rule's metric, and a cycle over named rules.
    frozen.set(T0 + 2 * M)
    touched = {"queue.depth": [{}], "disk.used": [{}]}
    update = MetricsIngested(batch_id="b-1", metrics=touched, start=T0, end=T0 + 2 * M)
    envelope = push_envelope(update.model_dump(mode="json"), message_id="mu-1", publish_time=T0 + 2 * M)
    assert ingest.post(f"/projects/{PROJECT}/topics/metric-updates", json=envelope).status_code == 200
    assert FirestoreStateStore().cycles()["disk-full"].claimed_at == T0 + 2 * M  # it did evaluate
    assert cycle(2, {"rules": ["disk-full"]}).json["transitions"] == []
    assert {
        "depth": _open("queue-depth-high"),
        "age": _open("queue-age-high"),
        "lag": _open("queue-lag-high"),
    } == (before)

    # Full cycles, 2 alerts at most each: age's, then one of depth's (by fingerprint); then the
    # other and lag's pending one (closed unannounced); then nothing is left to do.
    first = cycle(3).json
    assert first["errors"] == {}
    second = cycle(4).json["transitions"]
    again = cycle(5).json["transitions"]
    resolved = [AlertTransition.model_validate(t) for t in first["transitions"] + second]
    assert len(first["transitions"]) == 2
    assert len(second) == 1  # the last depth alert; lag's pending one closes silently
    assert again == []
    assert {
        "depth": _open("queue-depth-high"),
        "age": _open("queue-age-high"),
        "lag": _open("queue-lag-high"),
    } == {
        "depth": {"eu": "resolved", "us": "resolved"},
        "age": {"-": "resolved"},
        "lag": {"-": "inactive"},
    }
    by_rule = {(t.rule, t.labels.get("region")): t for t in resolved}
    depth = by_rule["queue-depth-high", "eu"]
    assert (depth.state, depth.previous_state, depth.metric, depth.severity) == (
        "resolved",
        "firing",
        "queue.depth",
        "critical",
    )
    assert depth.labels == {"region": "eu", "team": "queue"}
    assert (
        depth.annotations["summary"]
        == "queue depth 500 in eu (resolved: rule removed from the configuration)"
    )
    assert depth.runbook == ["drain the queue"]
    assert depth.transition_id == f"{depth.fingerprint}-2"
    age = by_rule["queue-age-high", None]
    assert age.annotations["resolved_reason"] == "rule disabled"
    # Each resolve is in the outbox beside its firing and was published like any transition.
    outbox = {d.id: d.to_dict() for d in fs.collection(OUTBOX_COLLECTION).stream()}
    assert {t.transition_id for t in resolved} <= set(outbox)
    assert len(outbox) == 6
    assert all(doc["published"] for doc in outbox.values())


def test_cycles_racing_on_a_rule_gone_resolve_each_alert_once(fs: Any) -> None:
    regions = [f"r{i}" for i in range(8)]
    r = rule(op=">", threshold=10, window="1m", group_by=["region"])
    source = ReplaySource()
    for region in regions:
        source.add("m", {"region": region}, zip(times(2, 60), [12.0, 12.0], strict=True))
    assert len(Evaluator(source, FirestoreStateStore()).run([r], T0 + M).transitions) == len(regions)
    other = rule(name="other", op=">", threshold=10)
    barrier = threading.Barrier(4)
    results: list[CycleResult] = []

    def sweep(offset_ms: int) -> None:
        store = FirestoreStateStore()
        store.batch_alerts = 3  # several batches each, racing the other cycles'
        result = CycleResult(evaluated_at=T0 + 2 * M + timedelta(milliseconds=offset_ms))
        barrier.wait()
        retire_gone_rules(store, None, [other], result)
        results.append(result)

    threads = [threading.Thread(target=sweep, args=(k // 2 * 7,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [dict(result.failures) for result in results] == [{}] * 4
    moved = [t for result in results for t in result.transitions]
    assert sorted(t.labels["region"] for t in moved) == regions
    assert len(list(fs.collection(OUTBOX_COLLECTION).stream())) == 2 * len(regions)
    assert {s.state for s in FirestoreStateStore().all_states()} == {"resolved"}
