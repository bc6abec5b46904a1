"""The state machine without Firestore: writing only what changed decides exactly as writing every
state every cycle did (random series, cycles at random times), and what a skipped write stands for."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from functions.alerts.engine import Evaluator
from functions.alerts.source import ReplaySource
from functions.alerts.state import (
    KEEP_FIRED,
    OUTBOX_KEEP,
    AlertState,
    Observation,
    effective,
    must_write,
    step,
)
from functions.alerts.state_store import MemoryStateStore
from tests.alerts.helpers import T0, rule

M = timedelta(minutes=1)
REGIONS = ("us", "eu", "asia", "au")


def _random_run(seed: int) -> tuple[Any, ReplaySource, list[Any]]:
    """A threshold rule with random `for`, `keep_firing_for` and hysteresis; four series that
    breach, hover in the band, clear and vanish for a while; cycles every minute plus extra ones at
    odd seconds (evaluations on ingest)."""
    rng = random.Random(seed)
    r = rule(
        op=">",
        threshold=10,
        clear_threshold=rng.choice([None, 6]),
        window="1m",
        group_by=["region"],
        keep_firing_for=f"{rng.choice([0, 1, 2, 5])}m",
        **{"for": f"{rng.choice([0, 1, 3])}m"},
    )
    source = ReplaySource()
    for region in REGIONS:
        level = rng.choice([3.0, 8.0, 12.0])
        points = []
        for minute in range(90):
            if rng.random() < 0.15:
                level = rng.choice([3.0, 8.0, 12.0, 15.0])
            if rng.random() < 0.05:
                continue  # a scrape missed: the series is absent from that window
            points.append((T0 + minute * M, level * rng.uniform(0.9, 1.1)))
        source.add("m", {"region": region}, points)
    times = []
    for minute in range(1, 90):
        times.append(T0 + minute * M)
        if rng.random() < 0.3:
            times.append(T0 + minute * M + timedelta(seconds=rng.randint(1, 59)))
    return r, source, times


def _transition_facts(t: Any) -> tuple[Any, ...]:
    return (t.transition_id, t.state, t.previous_state, t.starts_at, t.ends_at, t.evaluated_at, t.severity)


def _state_facts(s: AlertState, completed: Any) -> tuple[Any, ...]:
    e = effective(s, completed)
    return (
        e.state,
        e.pending_since,
        e.firing_since,
        e.resolved_at,
        e.sequence,
        e.last_active_at if e.state == "firing" else None,
    )


@pytest.mark.parametrize("seed", range(40))
def test_writing_only_changes_decides_exactly_as_writing_every_state(seed: int) -> None:
    r, source, times = _random_run(seed)
    every = MemoryStateStore()
    every.write_unchanged = True  # the old cost: every decision written
    lean = MemoryStateStore()
    old, new = Evaluator(source, every), Evaluator(source, lean)
    moved = 0
    for now in times:
        a, b = old.run([r], now), new.run([r], now)
        assert not a.errors
        assert not b.errors
        assert [_transition_facts(t) for t in b.transitions] == [_transition_facts(t) for t in a.transitions]
        moved += len(a.transitions)
        done_old, done_new = every.cycles()[r.name].completed_at, lean.cycles()[r.name].completed_at
        old_states = {s.fingerprint: _state_facts(s, done_old) for s in every.all_states()}
        new_states = {s.fingerprint: _state_facts(s, done_new) for s in lean.all_states()}
        assert new_states == old_states, now
    assert moved  # the random series do fire and resolve


def test_a_steady_firing_alert_changes_nothing_worth_writing() -> None:
    at = T0 + 5 * M
    stored = AlertState(
        fingerprint="f",
        rule="r",
        kind="threshold",
        state="firing",
        firing_since=at,
        pending_since=at,
        last_active_at=at,
        evaluated_at=at,
        value=12.0,
        threshold=10.0,
        sequence=1,
        severity="high",
    )
    later = at + 3 * M
    still = stored.model_copy(update={"evaluated_at": later, "last_active_at": later, "value": 12.9})
    assert not must_write(stored, still)
    assert must_write(stored, still.model_copy(update={"value": 14.0}))  # moved by more than 10%
    assert must_write(stored, still.model_copy(update={"last_active_at": at + M}))  # stopped being active
    assert must_write(stored, still.model_copy(update={"severity": "critical"}))
    assert must_write(None, still)
    # Cycles completed since the write saw it active: they stand for it.
    seen = effective(stored, later)
    assert (seen.evaluated_at, seen.last_active_at) == (later, later)
    clearing = stored.model_copy(update={"evaluated_at": at + M})  # last active at `at`, then not
    assert effective(clearing, later).last_active_at == at
    assert effective(stored, at - M) == stored  # an older cycle says nothing new


def test_a_fired_alert_is_kept_longer_than_anything_remembers_its_transition_ids() -> None:
    from functions.fanout.records import KEEP as FANOUT_KEEP

    # A state that expired restarts at <fingerprint>-1: the outbox and fan-out must have
    # forgotten that id by then, with days to spare for TTL's deletion lag.
    assert max(OUTBOX_KEEP, FANOUT_KEEP) + timedelta(days=3) <= KEEP_FIRED


def test_every_annotation_is_rendered_not_only_the_summary() -> None:
    r = rule(
        op=">",
        threshold=10,
        group_by=["region"],
        annotations={
            "summary": "p95 {value} in {labels.region}",
            "description": "p95 {value} > {threshold} in {labels}",
            "dashboard": "https://dash.example/d/latency?region={labels.region}",
        },
    )
    _, moved = step(r, None, Observation({"region": "eu"}, 12.0, True, 10.0), T0)
    assert moved is not None
    assert moved.annotations == {
        "summary": "p95 12 in eu",
        "description": "p95 12 > 10 in region=eu",
        "dashboard": "https://dash.example/d/latency?region=eu",
    }
