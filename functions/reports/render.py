"""A ``DashboardView`` in the four formats: one self-contained HTML page (inline CSS, SVG charts,
meta refresh, no script and no external request), the documented JSON, Markdown and plain text.
Status is always written as a word beside its colour."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from functions.reports.panels import WINDOWS, Catalog
from functions.reports.views import DashboardView, PanelView, format_value
from shared.numbers import readable

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORMATS = ("html", "json", "markdown", "text")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}
STATUS_LABELS = {"ok": "OK", "warning": "WARNING", "breach": "BREACH", "no_data": "NO DATA", "info": "INFO"}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.upper())


def iso(at: datetime | None, zone: str = "UTC") -> str:
    """``at`` as the reader's clock in ``zone`` (an IANA name, checked by the API; default UTC),
    always named: a time read with another offset than its own would be off by it."""
    if at is None:
        return ""
    if zone == "UTC":
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    local = at.astimezone(ZoneInfo(zone))
    name = local.tzname() or ""
    # Some zones have no abbreviation (America/Sao_Paulo's is "-03"): their offset names them.
    if not name.isalpha():
        offset = local.strftime("%z")
        name = f"UTC{offset[:3]}:{offset[3:]}"
    return f"{local:%Y-%m-%d %H:%M} {name}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def labels_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all"


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    import jinja2

    from functions.reports import svg
    from functions.reports.incident_metrics import duration_text

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def chart(panel: PanelView, zone: str = "UTC") -> str:
        threshold = panel.band.ok if panel.band else None
        title = f"{panel.title} over the window"
        return svg.line_chart(
            panel.series, panel.unit, title, threshold=threshold, zone=ZoneInfo(zone), currency=panel.currency
        )

    def last_text(panel: PanelView, label: str) -> str:
        for series in panel.series:
            if series.label == label and series.points:
                return "latest " + format_value(series.points[-1][1], panel.unit, panel.currency)
        return "no data"

    env.globals.update(
        status_label=status_label,
        iso=iso,
        times_in=times_in,
        duration=duration,
        labels_text=labels_text,
        readable=readable,
        chart=chart,
        legend=svg.legend,
        last_text=last_text,
        format_value=format_value,
        span=duration_text,
    )
    return env


def render_html(view: DashboardView, catalog: Catalog, zone: str = "UTC") -> str:
    """The page; every time (charts, header, tables) in ``zone`` (the reader's, ``?tz=``), named."""
    return (
        templates()
        .get_template("dashboard.html.j2")
        .render(
            view=view,
            dashboards=[(name, d.title) for name, d in catalog.dashboards.items()],
            windows=list(WINDOWS),
            regions=catalog.regions,
            zone=zone,
        )
    )


def incident_lines(panel: PanelView, dash: str, zone: str = "UTC") -> list[str]:
    """The incident records' panels in text: per priority, then incidents one by one."""
    from functions.reports.incident_metrics import duration_text as span

    lines = [
        f"{dash}{p.priority} {p.severity}: {p.text} [{status_label(p.status)}]" for p in panel.priorities
    ]
    for r in panel.records:
        age = f", open for {span(r.age_seconds)}" if r.age_seconds is not None else ""
        missed = [
            m for m, flag in (("response", r.missed_response), ("resolution", r.missed_resolution)) if flag
        ]
        lines.append(
            f"{dash}{r.priority} {r.title} ({r.state}): opened {iso(r.opened_at, zone)}{age}"
            + (f"; MISSED {' and '.join(missed)} target" if missed else "")
        )
    return lines


def markdown_cell(text: str) -> str:
    """``text`` as one Markdown table cell, read as text: a pipe would split the row into cells,
    and a tag would reach whatever renders the Markdown as HTML (names are customers')."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.split())


def _panel_lines(panel: PanelView, *, markdown: bool, zone: str) -> list[str]:
    lines: list[str] = []
    dash = "- " if markdown else "  "
    head = (
        f"{panel.title}: {panel.text} [{status_label(panel.status)}]"
        if panel.text
        else (f"{panel.title} [{status_label(panel.status)}]")
    )
    lines.append(f"### {head}" if markdown else head)
    if panel.target:
        lines.append(f"Target: {panel.target}")
    if panel.kind == "timeseries" and len(panel.series) > 1:
        for series in panel.series:
            if series.points:
                latest = format_value(series.points[-1][1], panel.unit, panel.currency)
                lines.append(f"{dash}{series.label}: latest {latest}")
    if panel.rows:
        if markdown:
            lines += ["", "| name | value | share | status |", "|---|---:|---:|---|"]
            for row in panel.rows:
                share = f"{row.share * 100:.2f}%" if row.share is not None else ""
                label = markdown_cell(row.label)
                if row.detail:
                    label += f"<br>{markdown_cell(row.detail)}"
                text = markdown_cell(row.text)
                lines.append(f"| {label} | {text} | {share} | {status_label(row.status)} |")
            lines.append("")
        else:
            width = max(len(r.label) for r in panel.rows)
            for row in panel.rows:
                share = f"  {row.share * 100:6.2f}%" if row.share is not None else ""
                lines.append(f"  {row.label.ljust(width)}  {row.text:>12}{share}  {status_label(row.status)}")
                if row.detail:
                    lines.append(f"  {' ' * width}  {row.detail}")
    for alert in panel.alerts:
        lines.append(
            f"{dash}{alert.severity.upper()} {alert.rule} ({labels_text(alert.labels)}) "
            f"since {iso(alert.since, zone)}"
        )
    for incident in panel.incidents:
        lines.append(
            f"{dash}{incident.severity.upper()} {incident.summary}: {iso(incident.started, zone)}, "
            f"{duration(incident.duration_seconds)}{' (ongoing)' if incident.ongoing else ''}"
        )
    lines += incident_lines(panel, dash, zone)
    if panel.note:
        lines.append(panel.note)
    lines.append("")
    return lines


def times_in(zone: str) -> str:
    return "times in UTC" if zone == "UTC" else f"times in {zone}"


def render_markdown(view: DashboardView, zone: str = "UTC") -> str:
    lines = [
        f"# {view.title} [{status_label(view.status)}]",
        "",
        f"{view.description}",
        "",
        f"Window {view.window} ({iso(view.start, zone)} to {iso(view.end, zone)}), "
        f"region {view.region or 'all'}, generated {iso(view.generated_at, zone)}; {times_in(zone)}.",
        "",
    ]
    for panel in view.panels:
        # Table rows are escaped cell by cell (their <br> is ours); any other line may carry an
        # alert's labels or summary, a customer's name: no tag of theirs reaches a renderer.
        lines += [
            line if line.startswith("|") else line.replace("<", "&lt;").replace(">", "&gt;")
            for line in _panel_lines(panel, markdown=True, zone=zone)
        ]
    return "\n".join(lines).rstrip() + "\n"


def render_text(view: DashboardView, zone: str = "UTC") -> str:
    title = f"{view.title.upper()} [{status_label(view.status)}]"
    lines = [
        title,
        "=" * len(title),
        f"window {view.window}: {iso(view.start, zone)} to {iso(view.end, zone)}; "
        f"region {view.region or 'all'}; {times_in(zone)}",
        "",
    ]
    for panel in view.panels:
        lines += _panel_lines(panel, markdown=False, zone=zone)
    return "\n".join(lines).rstrip() + "\n"


def render_view(view: DashboardView, fmt: str, catalog: Catalog, zone: str = "UTC") -> str:
    if fmt == "html":
        return render_html(view, catalog, zone)
    if fmt == "json":
        # A program's format: instants stay RFC 3339 in UTC whatever ``zone`` (the client converts).
        return view.model_dump_json()
    if fmt == "markdown":
        return render_markdown(view, zone)
    return render_text(view, zone)


def index_payload(catalog: Catalog, base: str = "/dashboards") -> dict[str, Any]:
    return {
        "dashboards": [
            {
                "name": name,
                "title": d.title,
                "description": d.description,
                "refresh_seconds": d.refresh_seconds,
                "panels": [p.id for p in d.panels],
                "url": f"{base}/{name}",
            }
            for name, d in catalog.dashboards.items()
        ],
        "formats": list(FORMATS),
        "windows": list(WINDOWS),
        "regions": catalog.regions,
    }


def render_index(catalog: Catalog, fmt: str) -> str:
    payload = index_payload(catalog)
    if fmt == "json":
        import json

        return json.dumps(payload)
    if fmt == "html":
        return templates().get_template("index.html.j2").render(index=payload)
    bullet = "- " if fmt == "markdown" else "  "
    lines = ["# Dashboards" if fmt == "markdown" else "DASHBOARDS", ""]
    for d in payload["dashboards"]:
        lines.append(f"{bullet}{d['title']} ({d['url']}): {d['description']}")
    lines += ["", f"Formats: {', '.join(FORMATS)}; windows: {', '.join(WINDOWS)}."]
    return "\n".join(lines) + "\n"
