"""Time intervals are parsed once, when the routing file is loaded: a check reads numbers, never
the file's strings again (a route's intervals are checked for every transition and every tick)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from functions.fanout import time_intervals
from functions.fanout.time_intervals import TimeInterval


def test_the_strings_become_typed_ranges_at_load() -> None:
    interval = TimeInterval(
        times=[{"start_time": "09:00", "end_time": "24:00"}],
        weekdays=["monday:friday", "Sunday"],
        days_of_month=["-3:-1", "15"],
        months=["february", "11:12"],
    )
    assert interval.weekdays == [(1, 5), (7, 7)]
    assert interval.days_of_month == [(-3, -1), (15, 15)]
    assert interval.months == [(2, 2), (11, 12)]
    assert (interval.times[0].start_time, interval.times[0].end_time) == (540, 1440)


def test_a_check_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    interval = TimeInterval(
        times=[{"start_time": "09:00", "end_time": "17:00"}],
        weekdays=["monday:friday"],
        days_of_month=["1:-1"],
        months=["1:12"],
        location="America/New_York",
    )

    def no_parsing(*_args: object) -> int:
        raise AssertionError("a check re-parsed an interval's strings")

    monkeypatch.setattr(time_intervals, "_range", no_parsing)
    monkeypatch.setattr(time_intervals, "_minutes", no_parsing)
    assert interval.contains(datetime(2026, 10, 30, 13, 0, tzinfo=UTC))  # Friday 09:00 EDT
    assert not interval.contains(datetime(2026, 10, 31, 15, 0, tzinfo=UTC))  # Saturday


def test_a_value_that_is_no_string_is_still_refused() -> None:
    with pytest.raises(ValidationError, match="should be a string"):
        TimeInterval.model_validate({"days_of_month": [1]})
    with pytest.raises(ValidationError, match="should be a string"):
        TimeInterval.model_validate({"times": [{"start_time": 540, "end_time": "17:00"}]})
