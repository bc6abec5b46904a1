"""Report periods in a time zone: the previous ISO week (Monday 00:00 to Monday 00:00 local) or
calendar month, as UTC instants. Across a DST change a week is 167 or 169 hours long, as the
wall clock says; the previous period (week-over-week) is computed the same way."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel

from shared.clock import iana_time_zone

PeriodKind = Literal["week", "month", "day"]
WEEK_LABEL = re.compile(r"^(\d{4})-W(\d{2})$")
DAY_LABEL = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH_LABEL = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodError(ValueError):
    """A period or zone that cannot be used (the API answers 422 with this message)."""


class Period(BaseModel):
    kind: PeriodKind
    label: str
    time_zone: str
    start: AwareDatetime
    end: AwareDatetime
    previous_label: str
    previous_start: AwareDatetime
    previous_end: AwareDatetime
    # The current week so far (``week_so_far``): its end is when it was asked for, its label ends
    # in ``-partial`` so the full week is still reported once it is over.
    partial: bool = False

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def zone(name: str) -> ZoneInfo:
    try:
        return iana_time_zone(name)
    except ValueError:
        raise PeriodError(f"time zone {name!r} is not an IANA zone name (like America/New_York)") from None


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def week(label: str, time_zone: str) -> Period:
    match = WEEK_LABEL.match(label)
    if not match:
        raise PeriodError(f"week {label!r} is not an ISO week like 2026-W46")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise PeriodError(f"week {label!r} does not exist") from None
    tz = zone(time_zone)
    previous = monday - timedelta(days=7)
    return Period(
        kind="week",
        label=_week_label(monday),
        time_zone=time_zone,
        start=_midnight(monday, tz),
        end=_midnight(monday + timedelta(days=7), tz),
        previous_label=_week_label(previous),
        previous_start=_midnight(previous, tz),
        previous_end=_midnight(monday, tz),
    )


def last_full_week(now: datetime, time_zone: str) -> Period:
    """The ISO week before the one holding ``now`` in ``time_zone``."""
    local = now.astimezone(zone(time_zone)).date()
    this_monday = local - timedelta(days=local.weekday())
    return week(_week_label(this_monday - timedelta(days=7)), time_zone)


def _first_of_next(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def month(label: str, time_zone: str) -> Period:
    match = MONTH_LABEL.match(label)
    if not match or not 1 <= int(match[2]) <= 12:
        raise PeriodError(f"month {label!r} is not a month like 2026-11")
    tz = zone(time_zone)
    first = date(int(match[1]), int(match[2]), 1)
    previous = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return Period(
        kind="month",
        label=f"{first:%Y-%m}",
        time_zone=time_zone,
        start=_midnight(first, tz),
        end=_midnight(_first_of_next(first), tz),
        previous_label=f"{previous:%Y-%m}",
        previous_start=_midnight(previous, tz),
        previous_end=_midnight(first, tz),
    )


def last_full_month(now: datetime, time_zone: str) -> Period:
    local = now.astimezone(zone(time_zone)).date()
    first = local.replace(day=1)
    previous = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return month(f"{previous:%Y-%m}", time_zone)


def day(label: str, time_zone: str, *, until: datetime | None = None) -> Period:
    """A local calendar day, up to ``until`` when that falls inside it (the daily summary sent at
    17:00 covers the day so far); the period before is the day before over the same hours."""
    if not DAY_LABEL.match(label):
        raise PeriodError(f"day {label!r} is not a date like 2026-11-18")
    try:
        first = date.fromisoformat(label)
    except ValueError:
        raise PeriodError(f"day {label!r} does not exist") from None
    tz = zone(time_zone)
    start, whole_end = _midnight(first, tz), _midnight(first + timedelta(days=1), tz)
    end = whole_end if until is None or until >= whole_end else until.astimezone(UTC)
    before = first - timedelta(days=1)
    if end == whole_end:
        previous_end = start
    else:
        # The same wall-clock hour the day before (23 or 25 hours earlier across a DST change).
        previous_end = datetime.combine(before, end.astimezone(tz).time(), tzinfo=tz).astimezone(UTC)
    return Period(
        kind="day",
        label=first.isoformat(),
        time_zone=time_zone,
        start=start,
        end=end,
        previous_label=before.isoformat(),
        previous_start=_midnight(before, tz),
        previous_end=previous_end,
    )


def day_until(reference: datetime, time_zone: str) -> Period:
    """The local day holding ``reference``, from its midnight to ``reference``."""
    local = reference.astimezone(zone(time_zone)).date()
    return day(local.isoformat(), time_zone, until=reference)


def week_so_far(now: datetime, time_zone: str) -> Period:
    """The ISO week holding ``now`` in ``time_zone``, from its Monday to ``now`` (labelled partial),
    beside the same span of the week before (so the change compares like with like)."""
    local = now.astimezone(zone(time_zone)).date()
    full = week(_week_label(local - timedelta(days=local.weekday())), time_zone)
    end = now.astimezone(UTC)
    return full.model_copy(
        update={
            "label": f"{full.label}-partial",
            "end": end,
            "previous_end": end - (full.start - full.previous_start),
            "partial": True,
        }
    )
