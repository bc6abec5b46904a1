"""Routes' time intervals (Alertmanager's mute_time_intervals / active_time_intervals): the
intervals on their own local clock, the routing file's checks, and on the emulators an alert held
back outside office hours and notified when they begin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from functions.fanout.routes import RoutingError, load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from functions.fanout.time_intervals import NamedTimeInterval, TimeInterval
from tests.fanout.conftest import Fanout, make_transition, reset_fanout_caches

OFFICE_HOURS: dict[str, Any] = {
    "name": "office-hours",
    "time_intervals": [
        {
            "times": [{"start_time": "09:00", "end_time": "17:00"}],
            "weekdays": ["monday:friday"],
            "location": "America/New_York",
        }
    ],
}


def test_an_interval_keeps_its_local_clock_across_summer_time() -> None:
    office = NamedTimeInterval.model_validate(OFFICE_HOURS)
    # 09:00 New York is 13:00 UTC in summer time and 14:00 UTC after it ends (2026-11-01).
    assert office.contains(datetime(2026, 10, 30, 13, 0, tzinfo=UTC))  # Friday 09:00 EDT
    assert not office.contains(datetime(2026, 11, 2, 13, 30, tzinfo=UTC))  # Monday 08:30 EST
    assert office.contains(datetime(2026, 11, 2, 14, 0, tzinfo=UTC))  # Monday 09:00 EST
    assert not office.contains(datetime(2026, 11, 2, 22, 0, tzinfo=UTC))  # 17:00: the end is out
    assert not office.contains(datetime(2026, 10, 31, 15, 0, tzinfo=UTC))  # Saturday


def test_days_of_month_count_back_from_the_end_and_months_take_names() -> None:
    last_days = TimeInterval(days_of_month=["-3:-1"], months=["february", "11:12"])
    assert last_days.contains(datetime(2027, 2, 26, 12, tzinfo=UTC))  # Feb has 28 days in 2027
    assert not last_days.contains(datetime(2027, 2, 25, 12, tzinfo=UTC))
    assert last_days.contains(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert not last_days.contains(datetime(2026, 10, 31, 12, tzinfo=UTC))  # not a listed month
    assert TimeInterval(times=[{"start_time": "22:00", "end_time": "24:00"}]).contains(
        datetime(2026, 1, 1, 23, 59, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ({"weekdays": ["funday"]}, "monday, tuesday"),
        ({"weekdays": ["friday:monday"]}, "ends before it starts"),
        ({"days_of_month": ["0"]}, "-31..31, not 0"),
        ({"months": ["13"]}, "january"),
        ({"times": [{"start_time": "17:00", "end_time": "09:00"}]}, "must be before end_time"),
        ({"times": [{"start_time": "9:00", "end_time": "17:00"}]}, "like 09:00"),
        ({"location": "Pacific"}, "IANA time zone"),
        ({"hours": ["1"]}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_interval_is_refused_naming_what_is_allowed(interval: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TimeInterval.model_validate(interval)


def _routing_file(tmp_path: Path, **medium: Any) -> Path:
    raw = yaml.safe_load(DEFAULT_ROUTING_FILE.read_text())
    raw["time_intervals"] = [OFFICE_HOURS]
    raw["severities"]["medium"].update(medium)
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_route_may_name_only_defined_intervals(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="'weekends'; defined: office-hours"):
        load_routing(_routing_file(tmp_path, mute_time_intervals=["weekends"]))
    routing = load_routing(_routing_file(tmp_path, active_time_intervals=["office-hours"]))
    saturday = datetime(2026, 10, 31, 15, tzinfo=UTC)
    assert routing.time_mute("medium", saturday) == "outside active time intervals office-hours"
    assert routing.time_mute("critical", saturday) is None
    muting = load_routing(_routing_file(tmp_path, mute_time_intervals=["office-hours"]))
    assert muting.time_mute("medium", datetime(2026, 10, 30, 13, tzinfo=UTC)) == (
        "muted by time interval office-hours"
    )


@pytest.fixture
def office_hours_only(fanout: Fanout, tmp_path: Path) -> Iterator[None]:
    os.environ["ION_FANOUT_ROUTING_FILE"] = str(
        _routing_file(tmp_path, active_time_intervals=["office-hours"])
    )
    reset_fanout_caches()
    yield
    os.environ.pop("ION_FANOUT_ROUTING_FILE", None)
    reset_fanout_caches()


@pytest.mark.emulators
def test_an_alert_outside_office_hours_waits_for_them_and_a_notice_does_not(
    fanout: Fanout, office_hours_only: None
) -> None:
    from shared.notices import notice_transition

    clock = fanout.freeze(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))  # Monday 07:00 in New York
    alert = make_transition(rule="error-rate", severity="medium", at=clock.now())
    assert fanout.push(alert) == 200
    notice = notice_transition(
        notice_id="cost/anomaly/2026-11-02",
        source="cost",
        name="cost-anomaly",
        severity="medium",
        summary="Cost anomaly",
        at=clock.now(),
        labels={},
        annotations={},
    )
    assert fanout.push(notice) == 200
    clock.advance(timedelta(minutes=1))
    fanout.tick()
    texts = [m.all_text() for m in fanout.slack.top_level()]
    assert len(texts) == 1  # the notice went; the alert waits
    assert "Cost anomaly" in texts[0]
    clock.advance(timedelta(hours=1))
    assert fanout.tick()["unmuted"] == []  # 08:01: still outside
    clock.advance(timedelta(hours=1))  # 09:01 EST
    assert fanout.tick()["unmuted"] == [alert.fingerprint]
    fanout.tick()
    assert any("error-rate" in m.all_text() for m in fanout.slack.top_level())
