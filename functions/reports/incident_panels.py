"""The incident records' panels over a window, pure over ``incident_records.IncidentSource``
(read at most once per question per build, panels being built side by side) and, for the alert
counts, over the alert episodes ``PanelBuilder`` already pairs.

- ``incident_stat``: one figure of the incidents opened in the window (``within_target``,
  ``mttr``, ``mtta``, ``opened``), of the deadlines that passed unmet in it (``missed``), or of
  the incidents open now (``open``);
- ``incident_response``: MTTA and MTTR per priority, median and mean with counts;
- ``incident_list``: the incidents open now with their age (``shows: open``), the window's
  incidents, opened or resolved in it (``window``), or those that missed a deadline in it
  (``missed``);
- ``incident_trend``: a measure per week over the last ``weeks`` weeks to the window's end;
- ``alert_counts``: the alerts that fired in the window (firing episodes), by severity.

No incident is said in words ("no incident opened in this window"), never shown as a zero that
looks measured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from functions.reports.incident_metrics import (
    by_urgency,
    duration_text,
    mean_of,
    missed_in,
    mtta_seconds,
    mttr_seconds,
    priority_stats,
    record_view,
    within_share,
)
from functions.reports.incident_records import IncidentRecord, IncidentSource
from functions.reports.panels import Panel, Status
from functions.reports.views import IncidentView, PanelView, RowView, SeriesView, format_value, worst
from shared.messages import SEVERITY_ORDER

WEEK = timedelta(days=7)


class IncidentReads:
    """The reads of one build, each asked once (thread-safe)."""

    def __init__(
        self,
        source: IncidentSource,
        *,
        start: datetime,
        end: datetime,
        region: str | None,
        zone: tzinfo = UTC,
    ) -> None:
        self.source = source
        self.start, self.end = start, end
        self.zone = zone  # the report's: its trend's weeks are local weeks
        self.region = region
        self._answers: dict[tuple[Any, ...], list[IncidentRecord]] = {}
        self._lock = threading.Lock()

    def _once(self, key: tuple[Any, ...], read: Callable[[], list[IncidentRecord]]) -> list[IncidentRecord]:
        with self._lock:
            if key not in self._answers:
                found = read()
                self._answers[key] = [r for r in found if _in_region(r, self.region)]
            return self._answers[key]

    def opened(self) -> list[IncidentRecord]:
        return self._once(
            ("opened", self.start, self.end), lambda: self.source.opened_between(self.start, self.end)
        )

    def opened_since(self, start: datetime) -> list[IncidentRecord]:
        return self._once(("opened", start, self.end), lambda: self.source.opened_between(start, self.end))

    def resolved(self) -> list[IncidentRecord]:
        return self._once(
            ("resolved", self.start, self.end), lambda: self.source.resolved_between(self.start, self.end)
        )

    def open_now(self) -> list[IncidentRecord]:
        return self._once(("open",), self.source.open_now)

    def touched(self) -> list[IncidentRecord]:
        """Opened or resolved in the window, or open now: every incident that could have had a
        deadline in it (deduplicated by id)."""
        seen: dict[str, IncidentRecord] = {}
        for r in [*self.opened(), *self.resolved(), *self.open_now()]:
            seen.setdefault(r.id, r)
        return list(seen.values())


def _in_region(record: IncidentRecord, region: str | None) -> bool:
    return not region or record.labels.get("region") in (None, region)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def build_incident_panel(
    panel: Panel,
    base: dict[str, Any],
    reads: IncidentReads | None,
    *,
    now: datetime,
    episodes: Callable[[list[str] | None], list[IncidentView]],
) -> PanelView:
    if panel.kind == "alert_counts":
        return _alert_counts(panel, base, episodes(panel.severities or None))
    if reads is None:
        return PanelView(
            **base, status="no_data", text="not read", note="The incident records were not read."
        )
    if panel.kind == "incident_stat":
        return _stat(panel, base, reads, now)
    if panel.kind == "incident_response":
        return _response(base, reads, now)
    if panel.kind == "incident_list":
        return _list(panel, base, reads, now)
    return _trend(panel, base, reads, now)


def _graded(panel: Panel, value: float | None, fallback: Status) -> Status:
    if value is None:
        return fallback
    return panel.band.status(value) if panel.band else "info"


def _measure(measure: str, records: list[IncidentRecord], now: datetime) -> tuple[float | None, str]:
    """A measure of the incidents opened in a span, and how it reads."""
    if measure == "opened":
        return float(len(records)), _plural(len(records), "incident") if records else "no incident"
    if not records:
        return None, "no incident"
    if measure == "within_target":
        share, within, decided = within_share(records, now)
        if share is None:
            return (
                None,
                f"none decided yet ({_plural(len(records), 'incident')} still within their deadlines)",
            )
        return share, f"{format_value(share, 'percent')} ({within} of {decided})"
    values = [v for v in map(mttr_seconds if measure == "mttr" else mtta_seconds, records) if v is not None]
    mean = mean_of(values)
    if mean is None:
        return None, "none resolved yet" if measure == "mttr" else "none acknowledged yet"
    verb = "resolved" if measure == "mttr" else "acknowledged"
    return mean, f"{duration_text(mean)} (mean of {len(values)} {verb})"


def _stat(panel: Panel, base: dict[str, Any], reads: IncidentReads, now: datetime) -> PanelView:
    measure = panel.measure or "opened"
    if measure == "missed":
        missed = missed_in(reads.touched(), reads.start, reads.end, now)
        text = _plural(len(missed), "incident") + " missed a target" if missed else "no target missed"
        return PanelView(
            **base,
            status="breach" if missed else "ok",
            value=float(len(missed)),
            text=text,
        )
    if measure == "open":
        still = reads.open_now()
        return PanelView(
            **base,
            status="warning" if still else "ok",
            value=float(len(still)),
            text=_plural(len(still), "incident") + " open" if still else "no incident open",
        )
    opened = reads.opened()
    value, text = _measure(measure, opened, now)
    note = "" if opened else "No incident was opened in this window: nothing to measure."
    # No incident is nothing to grade (info), not missing data: the records were read.
    status = _graded(panel, value, "info")
    return PanelView(**base, status=status, value=value, text=text, note=note)


def _response(base: dict[str, Any], reads: IncidentReads, now: datetime) -> PanelView:
    opened = reads.opened()
    rows = priority_stats(opened, now)
    if not rows:
        return PanelView(
            **base,
            status="info",
            text="no incident",
            note="No incident was opened in this window: nothing to measure.",
        )
    return PanelView(
        **base,
        status=worst([r.status for r in rows]),
        value=float(len(opened)),
        text=_plural(len(opened), "incident"),
        priorities=rows,
    )


def _list(panel: Panel, base: dict[str, Any], reads: IncidentReads, now: datetime) -> PanelView:
    if panel.shows == "open":
        chosen = by_urgency(reads.open_now())
        empty = "No incident is open."
    elif panel.shows == "missed":
        chosen = by_urgency(missed_in(reads.touched(), reads.start, reads.end, now))
        empty = "No target was missed in this window."
    else:
        seen = {r.id: r for r in [*reads.opened(), *reads.resolved()]}
        chosen = sorted(seen.values(), key=lambda r: r.opened_at, reverse=True)
        empty = "No incident was opened or resolved in this window."
    views = [record_view(r, now) for r in chosen]
    overdue = any(v.missed_response or v.missed_resolution for v in views)
    # Open incidents are work waiting (warning); the window's, once dealt with in time, are history.
    waiting: Status = "warning" if panel.shows == "open" else "info"
    status: Status = "breach" if overdue else waiting if views else "ok"
    return PanelView(
        **base,
        status=status,
        value=float(len(views)),
        text=_plural(len(views), "incident") if views else "none",
        records=views,
        note="" if views else empty,
    )


def _trend(panel: Panel, base: dict[str, Any], reads: IncidentReads, now: datetime) -> PanelView:
    """Week by week to the window's end (the report's period end: its weeks are whole ones)."""
    measure = panel.measure or "mttr"
    # The same local time 7, 14, ... days before the end: across a DST change a week is 167 or
    # 169 hours, so each still starts on the report's local midnight.
    local_end = reads.end.astimezone(reads.zone)
    starts = [
        datetime.combine(local_end.date() - k * WEEK, local_end.time(), tzinfo=reads.zone).astimezone(UTC)
        for k in range(panel.weeks, 0, -1)
    ]
    records = reads.opened_since(starts[0])
    rows, points = [], []
    for start, until in zip(starts, [*starts[1:], reads.end], strict=True):
        week = [r for r in records if start <= r.opened_at < until]
        value, text = _measure(measure, week, now)
        label = f"week of {start.astimezone(reads.zone):%Y-%m-%d}"
        rows.append(RowView(label=label, value=value, text=text, status=_graded(panel, value, "info")))
        if value is not None:
            points.append((start, value))
    latest = next((r for r in reversed(rows) if r.value is not None), None)
    note = "" if records else f"No incident in the last {panel.weeks} weeks: nothing to chart."
    return PanelView(
        **base,
        status=latest.status if latest else "info",
        value=latest.value if latest else None,
        text=f"{latest.text}, {latest.label}" if latest else "no incident",
        series=[SeriesView(label=panel.title, points=points)] if points else [],
        rows=list(reversed(rows)) if records else [],
        note=note,
    )


def _alert_counts(panel: Panel, base: dict[str, Any], found: list[IncidentView]) -> PanelView:
    counts: dict[str, int] = {}
    for episode in found:
        counts[episode.severity] = counts.get(episode.severity, 0) + 1
    severities = panel.severities or sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__)
    total = sum(counts.values())
    rows = [
        RowView(
            label=severity,
            value=float(counts.get(severity, 0)),
            text=str(counts.get(severity, 0)),
            status="info",
            share=counts.get(severity, 0) / total if total else None,
        )
        for severity in severities
    ]
    urgent = any(counts.get(s) for s in ("critical", "high"))
    return PanelView(
        **base,
        status="breach" if urgent else "warning" if total else "ok",
        value=float(total),
        text=_plural(total, "alert") if total else "no alert fired",
        rows=rows if total else [],
        note="" if total else "No alert fired in this window.",
    )
