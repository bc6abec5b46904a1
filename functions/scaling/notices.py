"""The notices scaling publishes on the alerts topic: a scale change (``low``, the log or Slack as
fan-out routes it), a target the Cloud Run Admin API refuses for good (``high``) and a capacity
ceiling the forecast outgrows (``low``, a planning task)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.scaling.store import DecisionRecord

if TYPE_CHECKING:
    from functions.scaling.capacity import CapacityForecast, HorizonForecast


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
