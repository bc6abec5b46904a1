"""What the incident records measure, pure over ``incident_records.IncidentRecord``:

- MTTA = ``acknowledged_at - opened_at`` over the acknowledged incidents, MTTR = ``resolved_at -
  opened_at`` over the resolved ones, per priority, median and mean with their counts;
- within target: acknowledged by ``respond_by`` and resolved by ``resolve_by`` (the incident's
  own deadlines, which the fan-out set from its priority's targets). An incident resolved before
  anyone acknowledged it was answered by its resolve. An open incident whose deadlines have not
  passed is *pending*, neither within nor missed, so the share is over decided incidents only;
- the open incidents with their age;
- a deadline missed *in* a window (the daily summary's "targets missed"): one that fell in it and
  passed unmet.

Nothing here invents a figure: no incident gives ``None`` (said as "no incident"), never zero.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from functions.reports.incident_records import PRIORITIES, IncidentRecord
from functions.reports.incident_views import IncidentRecordView, PriorityStatsView
from functions.reports.panels import Status

# The seeds' targets per priority (response, resolution); the fan-out writes each incident's own
# deadlines from its configuration, and those decide "within target". These label the tables.
TARGETS: dict[str, tuple[timedelta, timedelta]] = {
    "P1": (timedelta(minutes=15), timedelta(hours=4)),
    "P2": (timedelta(hours=1), timedelta(hours=24)),
    "P3": (timedelta(hours=4), timedelta(days=3)),
    "P4": (timedelta(hours=24), timedelta(days=7)),
}
SEVERITIES = {"P1": "critical", "P2": "high", "P3": "medium", "P4": "low"}
Outcome = Literal["within", "missed", "pending"]


def duration_text(seconds: float | None) -> str:
    """A duration as people say it: 45 s, 12 min, 2 h 05 min, 3 d 04 h."""
    if seconds is None:
        return "none"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def mtta_seconds(record: IncidentRecord) -> float | None:
    if record.acknowledged_at is None:
        return None
    return max(0.0, (record.acknowledged_at - record.opened_at).total_seconds())


def mttr_seconds(record: IncidentRecord) -> float | None:
    if record.resolved_at is None:
        return None
    return max(0.0, (record.resolved_at - record.opened_at).total_seconds())


def _responded_at(record: IncidentRecord) -> datetime | None:
    """The first answer: the acknowledgement, or the resolve when nobody acknowledged first."""
    times = [t for t in (record.acknowledged_at, record.resolved_at) if t is not None]
    return min(times) if times else None


def missed_response(record: IncidentRecord, now: datetime) -> bool:
    answered = _responded_at(record)
    return answered > record.respond_by if answered is not None else now > record.respond_by


def missed_resolution(record: IncidentRecord, now: datetime) -> bool:
    if record.resolved_at is not None:
        return record.resolved_at > record.resolve_by
    return now > record.resolve_by


def outcome(record: IncidentRecord, now: datetime) -> Outcome:
    if missed_response(record, now) or missed_resolution(record, now):
        return "missed"
    return "within" if record.resolved_at is not None else "pending"


def within_share(records: Iterable[IncidentRecord], now: datetime) -> tuple[float | None, int, int]:
    """``(share, within, decided)``: the share of decided incidents that met both targets; None
    when none is decided yet."""
    outcomes = [outcome(r, now) for r in records]
    within = outcomes.count("within")
    decided = within + outcomes.count("missed")
    return (within / decided if decided else None), within, decided


def mean_of(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def missed_in(
    records: Iterable[IncidentRecord], start: datetime, end: datetime, now: datetime
) -> list[IncidentRecord]:
    """Incidents with a deadline in ``[start, end)`` that passed unmet (by ``now``)."""
    out = []
    for r in records:
        response = start <= r.respond_by < end and missed_response(r, now)
        resolution = start <= r.resolve_by < end and missed_resolution(r, now)
        if response or resolution:
            out.append(r)
    return out


def priority_stats(records: Iterable[IncidentRecord], now: datetime) -> list[PriorityStatsView]:
    """One row per priority that has incidents (none: no row, so nothing reads as measured)."""
    by_priority: dict[str, list[IncidentRecord]] = {p: [] for p in PRIORITIES}
    for r in records:
        by_priority[r.priority].append(r)
    rows = []
    for priority, group in by_priority.items():
        if not group:
            continue
        acks = [s for s in map(mtta_seconds, group) if s is not None]
        fixes = [s for s in map(mttr_seconds, group) if s is not None]
        outcomes = [outcome(r, now) for r in group]
        respond, resolve = TARGETS[priority]
        missed = outcomes.count("missed")
        within = outcomes.count("within")
        status: Status = "breach" if missed else "ok" if within else "info"
        mtta_text = (
            f"MTTA median {duration_text(median_of(acks))}, mean {duration_text(mean_of(acks))} "
            f"({len(acks)} acknowledged)"
            if acks
            else "none acknowledged yet"
        )
        mttr_text = (
            f"MTTR median {duration_text(median_of(fixes))}, mean {duration_text(mean_of(fixes))} "
            f"({len(fixes)} resolved)"
            if fixes
            else "none resolved yet"
        )
        rows.append(
            PriorityStatsView(
                priority=priority,
                severity=SEVERITIES[priority],
                respond_target_seconds=respond.total_seconds(),
                resolve_target_seconds=resolve.total_seconds(),
                opened=len(group),
                acknowledged=len(acks),
                resolved=len(fixes),
                mtta_median_seconds=median_of(acks),
                mtta_mean_seconds=mean_of(acks),
                mttr_median_seconds=median_of(fixes),
                mttr_mean_seconds=mean_of(fixes),
                within_target=within,
                missed_target=missed,
                pending=outcomes.count("pending"),
                text=f"{len(group)} incident{'s' if len(group) != 1 else ''}: {mtta_text}; {mttr_text}; "
                f"{within} within target, {missed} missed",
                status=status,
            )
        )
    return rows


def record_view(record: IncidentRecord, now: datetime) -> IncidentRecordView:
    return IncidentRecordView(
        id=record.id,
        priority=record.priority,
        severity=record.severity,
        state=record.state,
        title=record.title or record.id,
        labels=record.labels,
        opened_at=record.opened_at,
        acknowledged_at=record.acknowledged_at,
        resolved_at=record.resolved_at,
        acknowledged_by=record.acknowledged_by,
        resolved_by=record.resolved_by,
        respond_by=record.respond_by,
        resolve_by=record.resolve_by,
        age_seconds=max(0.0, (now - record.opened_at).total_seconds()) if record.is_open else None,
        acknowledge_seconds=mtta_seconds(record),
        resolve_seconds=mttr_seconds(record),
        missed_response=missed_response(record, now),
        missed_resolution=missed_resolution(record, now),
        runbook=record.runbook,
    )


def by_urgency(records: Iterable[IncidentRecord]) -> list[IncidentRecord]:
    """Highest priority first, then oldest first."""
    return sorted(records, key=lambda r: (r.priority, r.opened_at))
