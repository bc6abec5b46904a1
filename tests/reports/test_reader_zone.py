"""The reader's zone (``?tz=``) for every time a dashboard shows: only the charts followed it, the
header and the tables (alerts since, incidents started, incident records opened) stayed UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from functions.reports.incident_views import IncidentRecordView
from functions.reports.panels import load_catalog
from functions.reports.render import iso, render_view
from functions.reports.views import AlertView, DashboardView, IncidentView, PanelView

CATALOG = load_catalog()
END = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST), 15:00 UTC
SINCE = datetime(2026, 12, 7, 14, 5, tzinfo=UTC)  # 09:05 EST
STARTED = datetime(2026, 12, 7, 14, 20, tzinfo=UTC)  # 09:20 EST
OPENED = datetime(2026, 12, 7, 14, 35, tzinfo=UTC)  # 09:35 EST


def view() -> DashboardView:
    alerts = PanelView(
        id="alerts", title="Firing alerts", kind="alerts", unit="count", status="breach",
        alerts=[AlertView(rule="error_rate", kind="threshold", severity="critical", labels={},
                          since=SINCE, value=0.2, threshold=0.05)],
        incidents=[IncidentView(rule="error_rate", severity="critical", labels={}, started=STARTED,
                                ended=None, duration_seconds=2400, ongoing=True, summary="errors up")],
    )  # fmt: skip
    record = IncidentRecordView(
        id="inc-1", priority="P1", severity="critical", state="open", title="API down", labels={},
        opened_at=OPENED, acknowledged_at=None, resolved_at=None, acknowledged_by=None, resolved_by=None,
        respond_by=OPENED + timedelta(minutes=15), resolve_by=OPENED + timedelta(hours=4),
        age_seconds=1500, acknowledge_seconds=None, resolve_seconds=None, missed_response=True,
        missed_resolution=False,
    )  # fmt: skip
    records = PanelView(
        id="open",
        title="Open incidents",
        kind="incident_list",
        unit="count",
        status="breach",
        records=[record],
    )
    return DashboardView(
        name="overview", title="Overview", description="d", window="1h", region=None,
        start=END - timedelta(hours=1), end=END, step_seconds=60, refresh_seconds=300, generated_at=END,
        status="breach", panels=[alerts, records],
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["html", "markdown", "text"])
def test_the_header_and_tables_follow_the_readers_zone_named(fmt: str) -> None:
    shown = render_view(view(), fmt, CATALOG, "America/New_York")
    for local in ("2026-12-07 09:00 EST", "2026-12-07 10:00 EST", "09:05 EST", "09:20 EST", "09:35 EST"):
        assert local in shown, (fmt, local)
    assert "times in America/New_York" in shown
    assert " UTC" not in shown.replace("times in UTC", ""), fmt


@pytest.mark.parametrize("fmt", ["html", "markdown", "text"])
def test_utc_stays_the_default_and_is_named(fmt: str) -> None:
    shown = render_view(view(), fmt, CATALOG)
    for utc in ("2026-12-07 14:00 UTC", "2026-12-07 15:00 UTC", "14:05 UTC", "14:20 UTC", "14:35 UTC"):
        assert utc in shown, (fmt, utc)
    assert "times in UTC" in shown


def test_json_keeps_rfc3339_instants_in_utc_whatever_the_zone() -> None:
    """A program converts instants itself; one JSON per dashboard whatever the reader's zone."""
    local = render_view(view(), "json", CATALOG, "America/New_York")
    assert local == render_view(view(), "json", CATALOG)
    assert json.loads(local)["end"] == "2026-12-07T15:00:00Z"


def test_a_zone_without_an_abbreviation_is_named_by_its_offset() -> None:
    assert iso(END, "America/Sao_Paulo") == "2026-12-07 12:00 UTC-03:00"
    assert iso(END, "Asia/Kolkata") == "2026-12-07 20:30 IST"
    assert iso(END, "Etc/GMT+5") == "2026-12-07 10:00 UTC-05:00"
