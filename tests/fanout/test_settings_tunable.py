"""Timings an operator may need to tune in a storm or an outage are settings, each with the
former constant as its default and a validated range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.fanout.settings import FanoutSettings, get_fanout_settings

TUNABLE = {
    # variable: (field, default, lowest allowed, highest allowed)
    "ION_FANOUT_PAGERDUTY_SYNC_INLINE_SECONDS": ("pagerduty_sync_inline_seconds", 1.5, 0.1, 1.5),
    "ION_FANOUT_PAGERDUTY_SYNC_GIVE_UP_MINUTES": ("pagerduty_sync_give_up_minutes", 60, 5, 1440),
    "ION_FANOUT_SLACK_DOUBLE_CLICK_SECONDS": ("slack_double_click_seconds", 60, 5, 3600),
}


@pytest.mark.parametrize("variable", sorted(TUNABLE))
def test_each_timing_is_a_setting_with_its_former_default_and_a_range(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    field, default, lowest, highest = TUNABLE[variable]
    monkeypatch.delenv(variable, raising=False)
    assert getattr(FanoutSettings(), field) == default
    for allowed in (lowest, highest):
        monkeypatch.setenv(variable, str(allowed))
        assert getattr(FanoutSettings(), field) == allowed
    for refused in (lowest / 2, highest * 2):
        monkeypatch.setenv(variable, str(refused))
        with pytest.raises(ValidationError, match=variable):
            FanoutSettings()


@pytest.fixture
def double_click_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_FANOUT_SLACK_DOUBLE_CLICK_SECONDS", "10")
    get_fanout_settings.cache_clear()
    yield
    get_fanout_settings.cache_clear()


def test_the_double_click_window_is_the_settings(double_click_window: None) -> None:
    from functions.fanout.incident_record import Incident, TimelineEntry
    from functions.fanout.incident_silences import REF_PREFIX, _first_click

    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    click = "U1/C1/1.000001"
    incident = Incident(
        id="i1",
        priority="P1",
        severity="critical",
        title="t",
        group_key="g",
        opened_at=at,
        respond_by=at,
        resolve_by=at,
        timeline=[TimelineEntry(at=at, kind="note", by="ada", ref=f"{REF_PREFIX}{click}/s1")],
    )
    assert _first_click(incident, click, at + timedelta(seconds=10)) is not None
    assert _first_click(incident, click, at + timedelta(seconds=11)) is None  # 60 s by default
