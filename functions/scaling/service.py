"""One scaling cycle over every region of the rule set: read, decide, apply (or record as a dry
run), store, announce. Knows nothing of HTTP; the ports make it testable in memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from functions.scaling.capacity import (
    CapacityForecast,
    DailyPeak,
    HorizonForecast,
    daily_peaks,
    forecast_capacity,
)
from functions.scaling.forecast import ForecastConfig
from functions.scaling.policy import Decision, PolicyConfig, decide, learn_capacity
from functions.scaling.rules import RuleSet
from functions.scaling.settings import ScalingSettings
from functions.scaling.sources import GuardSource, HistorySource
from functions.scaling.store import DecisionRecord, DecisionStore, Outcome
from shared.logging import get_logger

log = get_logger("scaling")
HOURS_PER_MONTH = 730
SLOT = timedelta(minutes=5)


class Scaler:
    """What applying needs (``CloudRunScaler`` in production)."""

    def apply(self, region: str, service: str, min_instances: int, max_instances: int) -> Any: ...


@dataclass
class CycleResult:
    records: list[DecisionRecord]
    skipped: list[str]  # regions whose slot was already decided
    failed: list[str]  # a passing fault: the scheduler's retry may cure it
    misconfigured: list[str] = field(default_factory=list)  # refused for good: reported, not retried


def slot_of(at: datetime) -> str:
    seconds = math.floor(at.timestamp() / SLOT.total_seconds()) * SLOT.total_seconds()
    return datetime.fromtimestamp(seconds, at.tzinfo).strftime("%Y%m%dT%H%MZ")


def monthly_cost_change(decision: Decision, price: float) -> float:
    """Min instances are billed around the clock: the change of min times a month of hours."""
    before = decision.previous_min if decision.previous_min is not None else decision.min_instances
    return round((decision.min_instances - before) * HOURS_PER_MONTH * price, 2)


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
) -> CycleResult:
    """``report`` is told once about a region whose target the API refuses for good (a service
    that does not exist, a missing permission), until that changes."""
    chosen = [r for r in rules.regions if regions is None or r in regions]
    policy = PolicyConfig(
        headroom=settings.headroom,
        tolerance=settings.tolerance,
        stabilisation=timedelta(minutes=settings.stabilisation_minutes),
    )
    forecast_config = ForecastConfig()
    started = time.perf_counter()
    inputs = history.inputs(
        chosen, {r: rules.regions[r].service for r in chosen}, at, forecast_config.history_days
    )
    result = CycleResult([], [], [])
    slot = slot_of(at)
    for region in chosen:
        region_rules = rules.regions[region]
        stored = store.load(region)
        if stored.last_slot == slot and stored.last_outcome != "failed":
            result.skipped.append(region)
            continue
        data = inputs[region]
        capacity = learn_capacity(
            data.capacity_samples, region_rules.capacity_rpm or settings.default_capacity_rpm
        )
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
        )
        outcome: Outcome = "dry-run"
        error = None
        if scaler is not None:
            try:
                applied = scaler.apply(
                    region, region_rules.service, decision.min_instances, decision.max_instances
                )
                outcome = applied.outcome
            except Exception as exc:  # noqa: BLE001 - recorded, reported, retried next cycle
                from shared.transient import is_transient

                error = f"{type(exc).__name__}: {exc}"
                # The service keeps its old values: so does the state, and the next run retries.
                state = stored.state
                if is_transient(exc):
                    outcome = "failed"
                    result.failed.append(region)
                else:
                    outcome = "misconfigured"
                    result.misconfigured.append(region)
        record = DecisionRecord(
            decision=decision,
            slot=slot,
            service=region_rules.service,
            outcome=outcome,
            error=error,
            monthly_cost_change_usd=monthly_cost_change(decision, settings.instance_hour_usd),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if not store.commit(region, record, state, timedelta(days=settings.decisions_ttl_days)):
            result.skipped.append(region)
            continue
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
        if decision.changed and outcome not in ("failed", "misconfigured"):
            announce(record)
        last = stored.recent[0] if stored.recent else None
        if outcome == "misconfigured" and report and not (last and last.error == error):
            report(record)
        result.records.append(record)
    return result


def problem_notice(record: DecisionRecord) -> Any:
    """The one notice of a target the Cloud Run Admin API refuses for good."""
    from shared.notices import notice_transition

    d = record.decision
    return notice_transition(
        notice_id=f"scaling-target/{d.region}/{record.slot}",
        source="scaling",
        name="scaling-target-refused",
        severity="high",
        summary=(
            f"Scaling cannot set {d.region}/{record.service}: {record.error}. Check the service "
            "exists and the scaling_targets variable (README: Deploy); it is not retried until the next slot."
        ),
        at=d.at,
        labels={"region": d.region, "service": record.service, "outcome": record.outcome},
        metric="scaling.min_instances",
    )


def notice_for(record: DecisionRecord) -> Any:
    from shared.notices import notice_transition

    d = record.decision
    verb = "would set" if record.outcome == "dry-run" else "set"

    def before(value: int | None) -> str:
        return "unset" if value is None else str(value)

    summary = (
        f"Scaling {verb} {d.region}/{record.service} min instances {before(d.previous_min)} -> "
        f"{d.min_instances}, max {before(d.previous_max)} -> {d.max_instances} "
        f"(forecast peak {d.forecast.point:.0f}/min, "
        f"upper {d.forecast.upper:.0f}/min, bound by {d.bound_by}"
        + (f" rule {d.rule}" if d.rule else "")
        + f"; {record.monthly_cost_change_usd:+.2f} USD/month)"
    )
    return notice_transition(
        notice_id=f"scaling/{d.region}/{record.slot}",
        source="scaling",
        name="scale-change",
        severity="low",
        summary=summary,
        at=d.at,
        labels={"region": d.region, "service": record.service, "outcome": record.outcome},
        value=float(d.min_instances),
        threshold=float(d.previous_min) if d.previous_min is not None else None,
        metric="scaling.min_instances",
    )


class HourlyRequests(Protocol):
    def hourly_requests(
        self, start: datetime, end: datetime, services: Mapping[str, str]
    ) -> dict[str, dict[datetime, float]]: ...


class CapacityStore(Protocol):
    def save_peaks(self, peaks: list[Any]) -> None: ...
    def peaks(self, region: str) -> list[dict[str, Any]]: ...
    def save_forecast(self, region: str, forecast: dict[str, Any]) -> None: ...


PEAK_DAYS = 89  # complete days folded into daily peaks on each run (the metric store keeps 90)


def run_capacity_job(
    *,
    now: datetime,
    rules: RuleSet,
    settings: ScalingSettings,
    history: HourlyRequests,
    store: CapacityStore,
    announce: Callable[[Any], None],
) -> dict[str, CapacityForecast]:
    """The daily capacity job: fold complete days of the metric store into daily peaks (idempotent
    upserts), forecast each region's 30/90/365 days from all kept peaks, store the forecast, and
    announce each horizon whose upper band needs more instances than the region's ceiling."""
    today = now.date()
    start = datetime.combine(today - timedelta(days=PEAK_DAYS), datetime.min.time(), tzinfo=now.tzinfo)
    services = {region: region_rules.service for region, region_rules in rules.regions.items()}
    hourly = history.hourly_requests(start, start + timedelta(days=PEAK_DAYS), services)
    out: dict[str, CapacityForecast] = {}
    for region, region_rules in rules.regions.items():
        series = hourly.get(region, {})
        peaks = [
            peak
            for offset in range(PEAK_DAYS)
            if (peak := daily_peaks(region, series, start.date() + timedelta(days=offset))) is not None
        ]
        store.save_peaks(peaks)
        kept = [DailyPeak.model_validate(doc) for doc in store.peaks(region)]
        capacity = learn_capacity([], region_rules.capacity_rpm or settings.default_capacity_rpm)
        forecast = forecast_capacity(
            region, kept, today, capacity_rpm=capacity.rpm, instance_hour_usd=settings.instance_hour_usd
        )
        store.save_forecast(region, {**forecast.model_dump(mode="json"), "computed_at": now.isoformat()})
        for horizon in forecast.horizons:
            if (horizon.instances_needed_high or 0) > region_rules.ceiling:
                announce(capacity_notice(forecast, horizon, region_rules.ceiling, now))
        out[region] = forecast
    return out


def capacity_notice(forecast: CapacityForecast, horizon: HorizonForecast, ceiling: int, now: datetime) -> Any:
    """Once a month per region and horizon (the notice id): a ceiling that the forecast will
    outgrow is a planning task (raise max instances, quota, budget), not a page."""
    from shared.notices import notice_transition

    summary = (
        f"Capacity: {forecast.region} may need up to {horizon.instances_needed_high} instances within "
        f"{horizon.horizon_days} days (forecast {horizon.instances_needed}, band "
        f"{horizon.instances_needed_low}-{horizon.instances_needed_high}, peak up to "
        f"{horizon.peak_rpm_high:.0f} requests/min); max instances is {ceiling}. "
        f"About {horizon.monthly_cost_usd_high:.0f} USD/month at the upper band."
    )
    return notice_transition(
        notice_id=f"scaling-capacity/{forecast.region}/{horizon.horizon_days}/{now:%Y-%m}",
        source="scaling",
        name="capacity-ceiling",
        severity="low",
        summary=summary,
        at=now,
        labels={"region": forecast.region, "horizon": f"{horizon.horizon_days}d"},
        value=float(horizon.instances_needed_high or 0),
        threshold=float(ceiling),
        metric="scaling.capacity.instances_needed",
    )
