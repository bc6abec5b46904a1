"""One scaling cycle over every region of the rule set: read, decide, apply (or record as a dry
run), store, announce. Knows nothing of HTTP; the ports make it testable in memory."""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from functions.scaling.capacity import learn_capacity
from functions.scaling.forecast import ForecastConfig
from functions.scaling.models import Decision, Live
from functions.scaling.policy import PolicyConfig, decide, on_grid
from functions.scaling.rules import RuleSet
from functions.scaling.settings import ScalingSettings
from functions.scaling.sources import GuardSource, HistorySource
from functions.scaling.store import DecisionRecord, DecisionStore, Outcome, slot_taken
from shared.logging import get_logger

log = get_logger("scaling")
HOURS_PER_MONTH = 730
SLOT = timedelta(minutes=1)  # a decision every minute (the forecast refreshed every 5)


class Scaler(Protocol):
    """What reading and applying need (``CloudRunScaler`` in production). ``timeout`` bounds each
    API call; ``live`` is the read the decision stepped from (its etag makes a concurrent change
    fail rather than be overwritten)."""

    def read(self, region: str, service: str, *, timeout: float | None = None) -> Any: ...

    def apply(
        self,
        region: str,
        service: str,
        min_instances: int,
        max_instances: int,
        *,
        timeout: float | None = None,
        live: Any = None,
    ) -> Any: ...


@dataclass
class CycleResult:
    records: list[DecisionRecord]
    skipped: list[str]  # regions whose slot was already decided (or a later one)
    failed: list[str]  # a passing fault: the scheduler's retry may cure it
    misconfigured: list[str] = field(default_factory=list)  # refused for good: reported, not retried
    timed_out: list[str] = field(default_factory=list)  # not done by the deadline: nothing recorded


def slot_start(at: datetime) -> datetime:
    seconds = math.floor(at.timestamp() / SLOT.total_seconds()) * SLOT.total_seconds()
    return datetime.fromtimestamp(seconds, UTC)


def slot_of(at: datetime) -> str:
    return slot_start(at).strftime("%Y%m%dT%H%MZ")


STALE_SCHEDULE = timedelta(minutes=30)
EARLY_SCHEDULE = timedelta(minutes=1)


def decision_time(scheduled: datetime | None, now: datetime) -> datetime:
    """The instant a run decides for: the scheduler's schedule time (so a retry, however late,
    decides the same slot with the same rules), or the clock floored to its slot (a manual run).
    A schedule time more than 30 minutes old or in the future is refused (ValueError): deciding
    a long-past slot would apply a stale decision."""
    if scheduled is None:
        return slot_start(now)
    if scheduled > now + EARLY_SCHEDULE:
        raise ValueError(f"{scheduled.isoformat()} is in the future (the clock says {now.isoformat()})")
    if scheduled < now - STALE_SCHEDULE:
        raise ValueError(
            f"{scheduled.isoformat()} is not within the last {STALE_SCHEDULE.seconds // 60} minutes"
        )
    return slot_start(scheduled)


def settle_wait(at: datetime, now: datetime, settle_seconds: float) -> float:
    """Seconds to wait before reading for the decision at ``at``: the minute before it is complete
    in the metric store ``settle_seconds`` after ``at`` (the decision follows that minute's load)."""
    return max(0.0, min(settle_seconds, (at + timedelta(seconds=settle_seconds) - now).total_seconds()))


def monthly_cost_change(decision: Decision, price: float) -> float:
    """Min instances are billed around the clock: the change of min times a month of hours."""
    before = decision.previous_min if decision.previous_min is not None else decision.min_instances
    return round((decision.min_instances - before) * HOURS_PER_MONTH * price, 2)


@dataclass
class _Done:
    record: DecisionRecord | None = None
    skipped: bool = False
    late: bool = False  # the deadline passed first: nothing recorded


def run_cycle(
    *,
    at: datetime,
    rules: RuleSet,
    settings: ScalingSettings,
    history: HistorySource,
    guard: GuardSource,
    store: DecisionStore,
    scaler: Scaler | None,
    announce: Callable[[DecisionRecord], None],
    regions: list[str] | None = None,
    report: Callable[[DecisionRecord], None] | None = None,
    dry_run: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    forecast_config: ForecastConfig | None = None,
    policy_config: PolicyConfig | None = None,
) -> CycleResult:
    """``scaler`` reads each region's live min/max before deciding (a dry run too: reading is
    allowed) and applies unless ``dry_run`` (default: no scaler). Regions run side by side, each
    API call bounded by what is left of ``settings.deadline_seconds``; a region not done by then
    is in ``timed_out`` with nothing recorded (the retry decides it again from the live values).
    ``report`` is told once about a region whose target the API refuses for good (a service that
    does not exist, a missing permission), until that changes."""
    started = clock()
    deadline = started + settings.deadline_seconds
    dry = scaler is None if dry_run is None else dry_run
    chosen = [r for r in rules.regions if regions is None or r in regions]
    policy = replace(
        policy_config or PolicyConfig(),
        headroom=settings.headroom,
        forecast_headroom=settings.forecast_headroom,
        tolerance=settings.tolerance,
        stabilisation=timedelta(minutes=settings.stabilisation_minutes),
        max_factor=settings.max_factor,
    )
    forecast_config = forecast_config or ForecastConfig()
    services = {r: rules.regions[r].service for r in chosen}
    # Off the forecast grid a decision reuses the stored forecast: the last minutes are enough.
    grid = on_grid(at, policy)
    inputs = (
        history.inputs(chosen, services, at, forecast_config.history_days)
        if grid
        else history.latest(chosen, services, at)
    )
    slot = slot_of(at)
    locks = {region: threading.Lock() for region in chosen}
    abandoned: set[str] = set()
    committed: dict[str, _Done] = {}

    def remaining() -> float:
        return deadline - clock()

    def call_timeout() -> float:
        left = remaining()
        if left <= 0:
            raise DeadlinePassed(f"the cycle's {settings.deadline_seconds:.0f} s deadline passed")
        return min(settings.apply_timeout_seconds, left)

    def one(region: str) -> _Done:
        region_rules = rules.regions[region]
        stored = store.load(region)
        if slot_taken(stored, slot):
            return _Done(skipped=True)
        data = inputs[region]
        default_rpm = region_rules.capacity_rpm or settings.default_capacity_rpm
        capacity = (
            learn_capacity(data.capacity_samples, default_rpm)
            if grid or stored.state.capacity is None
            else stored.state.capacity
        )
        outcome: Outcome = "dry-run"
        error: str | None = None
        read: Any = None
        if scaler is not None:
            try:
                read = scaler.read(region, region_rules.service, timeout=call_timeout())
            except DeadlinePassed:
                return _Done(late=True)
            except Exception as exc:  # noqa: BLE001 - recorded, reported, retried
                outcome, error = _failure(exc)
        live = Live(min_instances=read.min_instances, max_instances=read.max_instances) if read else None
        decision, state = decide(
            region=region,
            at=at,
            history=data.history,
            state=stored.state,
            bounds=rules.bounds(region, at),
            capacity=capacity,
            zone=region_rules.zone,
            guard_firing=guard.firing(region, settings.guard_rule_names),
            forecast_config=forecast_config,
            config=policy,
            live=live,
        )
        if error is None and not dry and scaler is not None:
            try:
                applied = scaler.apply(
                    region,
                    region_rules.service,
                    decision.min_instances,
                    decision.max_instances,
                    timeout=call_timeout(),
                    live=read,
                )
                outcome = applied.outcome
            except DeadlinePassed:
                return _Done(late=True)
            except Exception as exc:  # noqa: BLE001 - recorded, reported, retried next cycle
                outcome, error = _failure(exc)
        if error is not None:
            # The service keeps its old values: so does the state, and the next run retries.
            state = stored.state
        elif outcome == "dry-run":
            # Nothing was applied: keep what was last applied, add only the learning.
            state = stored.state.learned(state)
        record = DecisionRecord(
            decision=decision,
            slot=slot,
            service=region_rules.service,
            outcome=outcome,
            error=error,
            monthly_cost_change_usd=monthly_cost_change(decision, settings.instance_hour_usd),
            duration_ms=round((clock() - started) * 1000, 1),
        )
        with locks[region]:
            # Past the deadline the caller has reported this region as not done: record nothing.
            if region in abandoned:
                return _Done(late=True)
            if not store.commit(region, record, state, timedelta(days=settings.decisions_ttl_days)):
                return _Done(skipped=True)
            committed[region] = _Done(record=record)
        log.info(
            "scaling decision %s: min %s -> %s, max %s -> %s (%s)",
            region,
            decision.previous_min,
            decision.min_instances,
            decision.previous_max,
            decision.max_instances,
            outcome,
            extra={"decision": record.model_dump(mode="json")},
        )
        last = stored.recent[0] if stored.recent else None
        if decision.changed and outcome not in ("failed", "misconfigured") and not _repeated(record, last):
            announce(record)
        if outcome == "misconfigured" and report and not (last and last.error == error):
            report(record)
        return committed[region]

    # Side by side: each region waits on the API (up to a minute for an operation), not on CPU.
    pool = ThreadPoolExecutor(max_workers=max(1, len(chosen)), thread_name_prefix="scaling")
    # Each thread runs in a copy of this context: its log lines keep the request's trace.
    futures = {region: pool.submit(contextvars.copy_context().run, one, region) for region in chosen}
    wait(futures.values(), timeout=max(0.0, remaining()))
    pool.shutdown(wait=False, cancel_futures=True)
    result = CycleResult([], [], [])
    for region, future in futures.items():
        with locks[region]:
            if not future.done() and region not in committed:
                abandoned.add(region)
        if region in abandoned:
            result.timed_out.append(region)
            log.error("scaling: %s not decided within the deadline", region, extra={"region": region})
            continue
        if future.done() and future.exception() is not None:
            # A read of the store or the guard failed: nothing recorded, the retry decides it.
            log.error(
                "scaling: %s failed before its decision was recorded",
                region,
                exc_info=future.exception(),
                extra={"region": region},
            )
            result.failed.append(region)
            continue
        done = committed[region] if not future.done() else future.result()
        if done.late:
            result.timed_out.append(region)
        elif done.skipped:
            result.skipped.append(region)
        elif done.record is not None:
            result.records.append(done.record)
            if done.record.outcome == "failed":
                result.failed.append(region)
            elif done.record.outcome == "misconfigured":
                result.misconfigured.append(region)
    return result


def _repeated(record: DecisionRecord, last: DecisionRecord | None) -> bool:
    """A dry run that would set what the last one would, on the same live values: the service
    does not change in a dry run, so without this every slot would announce the same change."""
    if record.outcome != "dry-run" or last is None or last.outcome != "dry-run":
        return False
    now, before = record.decision, last.decision
    return (now.min_instances, now.max_instances, now.previous_min, now.previous_max) == (
        before.min_instances,
        before.max_instances,
        before.previous_min,
        before.previous_max,
    )


class DeadlinePassed(TimeoutError):
    """The cycle's deadline passed before a region's next API call."""


def _failure(exc: Exception) -> tuple[Outcome, str]:
    from google.api_core.exceptions import Conflict

    from shared.transient import is_transient

    error = f"{type(exc).__name__}: {exc}"
    # A conflict is the service changed since it was read (by hand, Terraform): the retry reads
    # it again and steps from it; the target is not misconfigured.
    passing = is_transient(exc) or isinstance(exc, Conflict)
    return ("failed" if passing else "misconfigured"), error
