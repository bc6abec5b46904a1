"""Scaling acts on the live service (issue 22 item 3): the policy steps from the live min/max read
before deciding (a dry run too), never from what a dry run stored; the slot is the scheduler's
schedule time; regions run side by side within a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import flask
import pytest

from devtools.cloudrun_standin import CloudRunState
from functions.scaling.cloudrun import ApplyResult, CloudRunScaler, LiveScaling
from functions.scaling.rules import active_rules
from functions.scaling.service import CycleResult, Scaler, decision_time, run_cycle
from functions.scaling.settings import ScalingSettings
from functions.scaling.sources import MemoryGuard, MemoryHistory, RegionInputs
from functions.scaling.store import DecisionRecord, MemoryDecisionStore
from shared import clock
from tests.scaling.conftest import PROJECT
from tests.scaling.test_function import RULES, busy_history

QUIET = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 10:00 in Chicago: no time-of-day rule
US = f"projects/{PROJECT}/locations/us-central1/services/persona-router"


def run(
    at: datetime,
    store: MemoryDecisionStore,
    scaler: Scaler | None,
    *,
    rpm: float = 6_000.0,
    dry_run: bool | None = None,
    settings: ScalingSettings | None = None,
    regions: list[str] | None = None,
    announce: Callable[[DecisionRecord], None] = lambda record: None,
) -> CycleResult:
    history = MemoryHistory(
        {
            "us-central1": RegionInputs(busy_history(rpm, at)),
            "europe-west1": RegionInputs(busy_history(rpm, at)),
        }
    )
    return run_cycle(
        at=at,
        rules=RULES,
        settings=settings or ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0),
        history=history,
        guard=MemoryGuard(),
        store=store,
        scaler=scaler,
        announce=announce,
        regions=regions or ["us-central1"],
        dry_run=dry_run,
    )


def test_a_hand_changed_live_min_is_stepped_down_from_not_cut(standin: tuple[str, CloudRunState]) -> None:
    """The stored state said 5; someone set 20 by hand. The old policy stepped from 5 and cut the
    live 20 to 5 in one step; now the step is from the live 20, at most halving."""
    endpoint, state = standin
    store = MemoryDecisionStore()
    scaler = CloudRunScaler(PROJECT, endpoint)
    for step in range(8):  # 6,000/min: 5 instances, applied, 40 minutes of recommendations
        run(QUIET + step * timedelta(minutes=5), store, scaler)
    assert state.services[US]["scaling"]["minInstanceCount"] == 5
    state.services[US]["scaling"]["minInstanceCount"] = 20  # by hand, or Terraform
    record = run(QUIET + timedelta(minutes=40), store, scaler).records[0]
    assert record.decision.previous_min == 20
    assert record.decision.from_live
    assert (record.decision.min_instances, record.decision.bound_by) == (10, "step-limit")
    assert state.services[US]["scaling"]["minInstanceCount"] == 10


def test_a_dry_run_never_records_a_value_as_applied(standin: tuple[str, CloudRunState]) -> None:
    """A dry run used to advance the stored state as if applied (20 -> 10 -> 5), so the first live
    run cut the live 20 to 5 at once. Now a dry run reads the live 20, says what it would set and
    records nothing as applied; the first live run steps from 20."""
    endpoint, state = standin
    state.services[US]["scaling"]["minInstanceCount"] = 20
    store = MemoryDecisionStore()
    scaler = CloudRunScaler(PROJECT, endpoint)
    would = []
    announced: list[DecisionRecord] = []
    for step in range(12):  # an hour of dry runs at a load needing 5
        at = QUIET + step * timedelta(minutes=5)
        record = run(at, store, scaler, dry_run=True, announce=announced.append).records[0]
        assert record.outcome == "dry-run"
        assert record.decision.previous_min == 20  # read from the service
        would.append(record.decision.min_instances)
    assert would[0] == 20  # stabilising: 15 minutes of lower recommendations first
    assert would[-1] == 10  # then half of the live value, however long the dry run lasts
    assert state.requests == []
    # Announced when what it would set changes, not every 5 minutes while the service stays as is.
    assert [r.decision.min_instances for r in announced] == sorted(set(would), reverse=True)
    kept = store.load("us-central1").state
    assert (kept.min_instances, kept.changed_at) == (None, None)
    assert len(kept.recommendations) > 1  # the learning is kept
    live = run(QUIET + timedelta(minutes=60), store, scaler).records[0]
    assert live.outcome == "applied"
    assert (live.decision.previous_min, live.decision.min_instances) == (20, 10)
    assert state.services[US]["scaling"]["minInstanceCount"] == 10
    assert store.load("us-central1").state.min_instances == 10


class SideBySide:
    """Both regions must be applying at once to pass the barrier; Europe's update then hangs."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)
        self.release = threading.Event()

    def read(self, region: str, service: str, *, timeout: float | None = None) -> LiveScaling:
        return LiveScaling(1, 100, '"1"')

    def apply(
        self,
        region: str,
        service: str,
        min_instances: int,
        max_instances: int,
        *,
        timeout: float | None = None,
        live: LiveScaling | None = None,
    ) -> ApplyResult:
        assert timeout is not None
        assert timeout <= 2.0  # bounded by what is left of the cycle's deadline
        self.barrier.wait()
        if region == "europe-west1":
            self.release.wait(20)
        after = LiveScaling(min_instances, max_instances, '"2"')
        return ApplyResult("applied", live or after, after)


def test_regions_side_by_side_and_a_late_one_reported_not_half_recorded() -> None:
    scaler = SideBySide()
    store = MemoryDecisionStore()
    settings = ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0, ION_SCALING_DEADLINE_SECONDS=2.0)
    started = time.monotonic()
    result = run(
        QUIET, store, scaler, dry_run=False, settings=settings, regions=["us-central1", "europe-west1"]
    )
    assert time.monotonic() - started < 8  # the deadline, not Europe's hanging update
    assert [r.decision.region for r in result.records] == ["us-central1"]
    assert result.timed_out == ["europe-west1"]
    scaler.release.set()  # Europe's update returns after the cycle gave up on it
    for thread in threading.enumerate():
        if thread.name.startswith("scaling"):
            thread.join(10)
    assert store.load("europe-west1").last_slot is None  # nothing recorded: the retry decides it
    assert store.load("us-central1").last_outcome == "applied"


def test_a_late_retry_of_an_older_slot_never_overrides_a_newer_decision() -> None:
    store = MemoryDecisionStore()
    run(QUIET + timedelta(minutes=5), store, None)
    late = run(QUIET, store, None)
    assert late.skipped == ["us-central1"]
    assert late.records == []


def test_the_slot_is_the_schedule_time_across_dst() -> None:
    """Brussels on 2026-03-30 (UTC+2 since the 29th): the 05:55 UTC run is 07:55 local, before the
    08:00 morning-peak rule. Its retry at 06:01 used to decide slot 06:00 with the peak rule."""
    rules = active_rules()
    retry_clock = datetime(2026, 3, 30, 6, 1, 30, tzinfo=UTC)
    at = decision_time(datetime(2026, 3, 30, 5, 55, tzinfo=UTC), retry_clock)
    assert at == datetime(2026, 3, 30, 5, 55, tzinfo=UTC)
    store = MemoryDecisionStore()
    history = MemoryHistory({"europe-west1": RegionInputs(busy_history(100.0, at))})
    kwargs = {
        "rules": rules,
        "settings": ScalingSettings(),
        "history": history,
        "guard": MemoryGuard(),
        "scaler": None,
        "announce": lambda record: None,
        "regions": ["europe-west1"],
    }
    first = run_cycle(at=at, store=store, **kwargs).records[0]
    assert (first.slot, first.decision.rule) == ("20260330T0555Z", None)
    assert first.decision.local_time == "2026-03-30T07:55+02:00"
    retried = run_cycle(at=decision_time(at, retry_clock), store=store, **kwargs)
    assert retried.skipped == ["europe-west1"]  # the same slot, already decided
    manual = decision_time(None, retry_clock)  # no header: the clock's minute
    assert manual == datetime(2026, 3, 30, 6, 1, tzinfo=UTC)
    assert rules.bounds("europe-west1", manual).rule == "morning-peak"
    with pytest.raises(ValueError, match="last 30 minutes"):
        decision_time(retry_clock - timedelta(hours=2), retry_clock)
    with pytest.raises(ValueError, match="in the future"):
        decision_time(retry_clock + timedelta(minutes=5), retry_clock)


def test_the_handler_decides_the_scheduled_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.scaling import main as scaling_main
    from functions.scaling import service
    from functions.scaling import store as scaling_store

    seen: list[datetime] = []

    def fake_cycle(**kwargs: object) -> CycleResult:
        assert isinstance(kwargs["at"], datetime)
        seen.append(kwargs["at"])
        return CycleResult([], [], [])

    monkeypatch.setattr(service, "run_cycle", fake_cycle)
    monkeypatch.setattr(scaling_store, "FirestoreDecisionStore", MemoryDecisionStore)
    clock.set_clock(clock.FrozenClock(datetime(2026, 3, 30, 6, 1, 30, tzinfo=UTC)))
    app = flask.Flask("scaling-test")

    def post(headers: dict[str, str]) -> flask.Response:
        with app.test_request_context("/", method="POST", headers=headers):
            return scaling_main.handle(flask.request)

    assert post({"X-CloudScheduler-ScheduleTime": "2026-03-30T05:55:00Z"}).status_code == 200
    assert post({}).status_code == 200
    assert seen == [datetime(2026, 3, 30, 5, 55, tzinfo=UTC), datetime(2026, 3, 30, 6, 1, tzinfo=UTC)]
    told = {
        "soon": "X-CloudScheduler-ScheduleTime",
        "2026-03-30T03:00:00Z": "is not within the last 30 minutes",
        "2026-03-30T06:10:00Z": "is in the future",
    }
    for value, reason in told.items():
        answer = post({"X-CloudScheduler-ScheduleTime": value})
        assert answer.status_code == 400
        assert reason in answer.get_json()["detail"]
    assert len(seen) == 2


def test_a_run_settles_until_the_minute_before_is_in() -> None:
    from functions.scaling.service import settle_wait

    slot = datetime(2026, 3, 30, 6, 1, tzinfo=UTC)
    # Called by the scheduler at :00.4: waits until :15, when routing's last batch is in.
    assert settle_wait(slot, slot + timedelta(seconds=0.4), 15) == pytest.approx(14.6)
    # A retry, or a run that started late: no wait.
    assert settle_wait(slot, slot + timedelta(seconds=40), 15) == 0
    assert settle_wait(slot, slot + timedelta(minutes=3), 15) == 0
    # A clock a little behind the scheduler's never waits longer than the settling itself.
    assert settle_wait(slot, slot - timedelta(seconds=20), 15) == 15


def test_the_deadline_fits_the_schedule_and_the_function() -> None:
    from shared.topology import topology

    top = topology()
    job = top.schedules["scaling-adjust"]
    attempt = float(str(job.attempt_deadline).rstrip("s"))
    timeout = top.functions["adjust_scaling"].timeout_seconds
    settings = ScalingSettings()
    # Settling, then the run, then a margin to answer and log; and within the cadence, so runs
    # of consecutive minutes overlap at most by one.
    assert settings.settle_seconds + settings.deadline_seconds + 5 <= min(attempt, timeout, 60)
    assert top.functions["adjust_scaling"].concurrency >= 2


def test_settling_and_a_deadline_past_the_minute_are_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ION_SCALING_DEADLINE_SECONDS=55 was taken (up to 3600 was): with 15 s of settling a run went
    on past the schedule's 60 s attempt deadline, so the scheduler retried a slot still running."""
    from pydantic import ValidationError

    from functions.scaling.settings import deployment_problems

    both = "ION_SCALING_SETTLE_SECONDS .*ION_SCALING_DEADLINE_SECONDS"
    with pytest.raises(ValidationError, match=both):
        ScalingSettings(ION_SCALING_DEADLINE_SECONDS=55.0)
    with pytest.raises(ValidationError, match=both):
        ScalingSettings(ION_SCALING_SETTLE_SECONDS=30.0, ION_SCALING_DEADLINE_SECONDS=30.0)
    assert ScalingSettings(ION_SCALING_SETTLE_SECONDS=10.0, ION_SCALING_DEADLINE_SECONDS=45.0)
    monkeypatch.setenv("ION_SCALING_DRY_RUN", "true")
    monkeypatch.setenv("ION_SCALING_DEADLINE_SECONDS", "55")
    problems = deployment_problems("adjust_scaling")
    assert any("ION_SCALING_DEADLINE_SECONDS (55)" in p for p in problems), problems


def test_a_region_whose_reads_fail_is_failed_and_the_others_decided() -> None:
    class BrokenGuard(MemoryGuard):
        def firing(self, region: str, rules: object) -> list[str]:
            if region == "europe-west1":
                raise ConnectionError("firestore unavailable")
            return []

    store = MemoryDecisionStore()
    history = MemoryHistory(
        {r: RegionInputs(busy_history(6_000.0, QUIET)) for r in ("us-central1", "europe-west1")}
    )
    result = run_cycle(
        at=QUIET,
        rules=RULES,
        settings=ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0),
        history=history,
        guard=BrokenGuard(),
        store=store,
        scaler=None,
        announce=lambda record: None,
    )
    assert [r.decision.region for r in result.records] == ["us-central1"]
    assert result.failed == ["europe-west1"]
    assert store.load("europe-west1").last_slot is None


def test_a_change_between_the_read_and_the_update_is_retried_not_overwritten(
    standin: tuple[str, CloudRunState],
) -> None:
    """Someone sets 30 by hand while the cycle decides: the update carries the etag read, fails
    (a passing fault, 503, retried; not a misconfigured target) and the retry steps from 30."""
    endpoint, state = standin

    class Racing(CloudRunScaler):
        def read(self, region: str, service: str, *, timeout: float | None = None) -> LiveScaling:
            live = super().read(region, service, timeout=timeout)
            if not state.requests:
                CloudRunScaler(PROJECT, endpoint).apply(region, service, 30, 100)  # by hand
            return live

    store = MemoryDecisionStore()
    result = run(QUIET, store, Racing(PROJECT, endpoint))
    assert result.failed == ["us-central1"]
    assert result.misconfigured == []
    assert "Conflict" in (result.records[0].error or "")
    assert state.services[US]["scaling"]["minInstanceCount"] == 30  # not overwritten
    retry = run(QUIET + timedelta(seconds=40), store, Racing(PROJECT, endpoint)).records[0]
    assert retry.outcome != "failed"
    assert (retry.decision.previous_min, retry.decision.min_instances) == (30, 30)  # stabilising
