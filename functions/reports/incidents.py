"""The alert panels' content: the alerts firing now, and the firing episodes (incidents) of a
window paired from the alert transitions. Pure over what ``source.AlertSource`` read."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from functions.reports.source import ActiveAlert, Transition
from functions.reports.views import AlertView, IncidentView
from shared.messages import SEVERITY_ORDER


def in_region(labels: dict[str, str], region: str | None) -> bool:
    """An alert without a region label belongs to every region."""
    return not region or labels.get("region") in (None, region)


def firing_alerts(
    active: list[ActiveAlert], *, kinds: list[str], severities: list[str], region: str | None
) -> list[AlertView]:
    """The firing alerts of those kinds and severities (all when empty), notices left out, most
    severe first."""
    chosen = [
        a
        for a in active
        if (not kinds or a.kind in kinds)
        and (not severities or a.severity in severities)
        and a.kind != "notice"
        and in_region(a.labels, region)
    ]
    chosen.sort(key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.rule))
    return [
        AlertView(
            rule=a.rule,
            kind=a.kind,
            severity=a.severity,
            labels=a.labels,
            since=a.firing_since,
            value=a.value,
            threshold=a.threshold,
        )
        for a in chosen
    ]


def episodes(
    transitions: list[Transition],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    severities: list[str] | None,
    region: str | None,
) -> list[IncidentView]:
    """Firing episodes overlapping ``[start, end)``: a firing transition and the resolve that
    follows it (same fingerprint); still open ones are ongoing at ``now``. Newest first."""
    by_alert: dict[str, list[Transition]] = defaultdict(list)
    for t in transitions:
        if (
            t.kind != "notice"
            and (not severities or t.severity in severities)
            and in_region(t.labels, region)
        ):
            by_alert[t.fingerprint].append(t)
    out: list[IncidentView] = []
    for moves in by_alert.values():
        moves.sort(key=lambda t: (t.evaluated_at, t.state != "firing"))
        opened: Transition | None = None
        for t in moves:
            if t.state == "firing":
                if opened is None:
                    opened = t
                continue
            if opened is not None:
                out.append(_incident(opened, t.ends_at or t.evaluated_at, now))
                opened = None
        if opened is not None:
            out.append(_incident(opened, None, now))
    kept = [i for i in out if i.started < end and (i.ended is None or i.ended > start)]
    kept.sort(key=lambda i: i.started, reverse=True)
    return kept


def _incident(opened: Transition, ended: datetime | None, now: datetime) -> IncidentView:
    until = ended or now
    return IncidentView(
        rule=opened.rule,
        severity=opened.severity,
        labels=opened.labels,
        started=opened.starts_at,
        ended=ended,
        duration_seconds=max(0.0, (until - opened.starts_at).total_seconds()),
        ongoing=ended is None,
        summary=opened.annotations.get("summary", opened.rule),
    )
