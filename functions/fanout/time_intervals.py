"""Named time intervals for routes, with Alertmanager's semantics (``time_intervals``, a route's
``mute_time_intervals`` and ``active_time_intervals``).

An interval matches a moment when every field it gives matches (a field left out matches
always); a named interval matches when any of its intervals does. ``times`` are local minutes of
the day in ``location``, the start included and the end not (``end_time: "24:00"`` is midnight);
``weekdays``, ``days_of_month`` (negative counts from the month's end, -1 its last day) and
``months`` are single values or inclusive ``a:b`` ranges. So "09:00-17:00 Monday to Friday in
New York" stays on New York's clock across a change of summer time."""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator

from shared.clock import ZoneName, iana_time_zone

WEEKDAYS = {
    name: i + 1
    for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if i} | {
    str(i): i for i in range(1, 13)
}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _minutes(text: str) -> int:
    if not _CLOCK.match(text):
        raise ValueError(f"{text!r} is not a time of day like 09:00 (00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _range(text: str, names: dict[str, int] | None, lowest: int, highest: int) -> tuple[int, int]:
    """``a`` or ``a:b`` as an inclusive pair of numbers in ``lowest``..``highest`` (0 excluded);
    ``names`` maps words to numbers, None reads integers."""
    allowed = f"{lowest}..{highest}, not 0" if names is None else ", ".join(names)
    parts = text.lower().split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        values = [int(p) if names is None else names[p] for p in parts]
    except (KeyError, ValueError):
        raise ValueError(f"{text!r} is not a value or a:b range of {allowed}") from None
    first, last = values[0], values[-1]
    if not all(lowest <= v <= highest and v != 0 for v in (first, last)):
        raise ValueError(f"{text!r}: allowed are {allowed}")
    if (first > 0) == (last > 0) and first > last:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return first, last


def _parsed(names: dict[str, int] | None, lowest: int, highest: int) -> BeforeValidator:
    """The YAML string read once, at load, into its inclusive (first, last) pair."""

    def parse(text: object) -> tuple[int, int]:
        if not isinstance(text, str):
            raise ValueError(f"{text!r} should be a string, a value or an a:b range")
        return _range(text, names, lowest, highest)

    return BeforeValidator(parse)


def _clock_minutes(text: object) -> int:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} should be a string, a time of day like 09:00")
    return _minutes(text)


# A minute of the day (0..1440), given in the routing file as "HH:MM".
MinuteOfDay = Annotated[StrictInt, BeforeValidator(_clock_minutes)]
Weekdays = Annotated[tuple[StrictInt, StrictInt], _parsed(WEEKDAYS, 1, 7)]
DaysOfMonth = Annotated[tuple[StrictInt, StrictInt], _parsed(None, -31, 31)]
Months = Annotated[tuple[StrictInt, StrictInt], _parsed(MONTHS, 1, 12)]


def _within(value: int, bounds: tuple[int, int], length: int) -> bool:
    """``value`` in the inclusive range; negative bounds count back from ``length`` (-1 = last)."""
    first, last = (b if b > 0 else length + 1 + b for b in bounds)
    return first <= value <= last


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRange(_Strict):
    """Minutes of the local day, ``start_time`` included and ``end_time`` not."""

    start_time: MinuteOfDay
    end_time: MinuteOfDay

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_time >= self.end_time:
            raise ValueError(
                f"start_time {_clock(self.start_time)} must be before end_time {_clock(self.end_time)}"
            )
        return self

    def contains(self, minute_of_day: int) -> bool:
        return self.start_time <= minute_of_day < self.end_time


class TimeInterval(_Strict):
    """Parsed once at load: each range an inclusive pair of numbers, the zone a ``ZoneInfo``."""

    times: list[TimeRange] = []
    weekdays: list[Weekdays] = []
    days_of_month: list[DaysOfMonth] = []
    months: list[Months] = []
    location: ZoneName = "UTC"

    @cached_property
    def zone(self) -> ZoneInfo:
        return iana_time_zone(self.location)

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        month_length = calendar.monthrange(local.year, local.month)[1]
        minute = local.hour * 60 + local.minute
        return (
            (not self.times or any(r.contains(minute) for r in self.times))
            and (not self.weekdays or any(_within(local.isoweekday(), w, 7) for w in self.weekdays))
            and (
                not self.days_of_month or any(_within(local.day, d, month_length) for d in self.days_of_month)
            )
            and (not self.months or any(_within(local.month, m, 12) for m in self.months))
        )


class NamedTimeInterval(_Strict):
    name: str = Field(min_length=1, max_length=100)
    time_intervals: list[TimeInterval] = Field(min_length=1)

    def contains(self, at: datetime) -> bool:
        return any(interval.contains(at) for interval in self.time_intervals)
