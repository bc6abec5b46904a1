"""The notices scaling publishes on the alerts topic: a scale change (``low``, the log or Slack as
fan-out routes it) and a target the Cloud Run Admin API refuses for good (``high``)."""

from __future__ import annotations

from typing import Any

from functions.scaling.store import DecisionRecord


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
