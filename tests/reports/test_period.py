"""Report periods: the previous ISO week in the job's time zone, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.reports.period import PeriodError, last_full_month, last_full_week, month, week

NY = "America/New_York"


def test_the_scheduled_monday_run_reports_the_week_before_in_its_zone() -> None:
    # Monday 16 Nov 2026 09:00 in New York (14:00 UTC): the week of Mon 9 to Mon 16 Nov.
    period = last_full_week(datetime(2026, 11, 16, 14, 0, tzinfo=UTC), NY)
    assert period.label == "2026-W46"
    assert period.start == datetime(2026, 11, 9, 5, 0, tzinfo=UTC)  # midnight EST
    assert period.end == datetime(2026, 11, 16, 5, 0, tzinfo=UTC)
    assert period.previous_label == "2026-W45"
    assert period.hours == 168


def test_the_same_instant_is_another_week_in_another_zone() -> None:
    # 03:00 UTC Monday is still Sunday evening in New York, already Monday noon in Tokyo.
    instant = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)
    assert last_full_week(instant, NY).label == "2026-W45"
    assert last_full_week(instant, "Asia/Tokyo").label == "2026-W46"
    assert last_full_week(instant, "Asia/Tokyo").start == datetime(2026, 11, 8, 15, 0, tzinfo=UTC)


def test_weeks_across_daylight_saving_changes_follow_the_wall_clock() -> None:
    autumn = week("2026-W44", NY)  # DST ends Sunday 1 Nov 2026
    assert autumn.hours == 169
    assert autumn.start == datetime(2026, 10, 26, 4, 0, tzinfo=UTC)  # midnight EDT
    assert autumn.end == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # midnight EST
    spring = week("2026-W10", NY)  # DST starts Sunday 8 Mar 2026
    assert spring.hours == 167
    assert week("2026-W10", "Etc/UTC").hours == 168
    assert week("2026-W11", NY).previous_end == spring.end


def test_months_and_the_year_boundary() -> None:
    january = month("2027-01", NY)
    assert january.previous_label == "2026-12"
    assert january.start == datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    assert last_full_month(datetime(2026, 12, 1, 15, 0, tzinfo=UTC), NY).label == "2026-11"
    assert week("2026-W53", NY).label == "2026-W53"  # 2026 has 53 ISO weeks


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: week("2026-46", NY), "ISO week"),
        (lambda: week("2025-W53", NY), "does not exist"),
        (lambda: month("2026-13", NY), "month"),
        (lambda: week("2026-W46", "Mars/Olympus"), "IANA"),
    ],
)
def test_bad_periods_say_why(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PeriodError, match=message):
        call()
