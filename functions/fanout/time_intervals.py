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
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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


def _checked(names: dict[str, int] | None, lowest: int, highest: int) -> AfterValidator:
    def check(text: str) -> str:
        _range(text, names, lowest, highest)
        return text.lower()

    return AfterValidator(check)


def _within(value: int, bounds: tuple[int, int], length: int) -> bool:
    """``value`` in the inclusive range; negative bounds count back from ``length`` (-1 = last)."""
    first, last = (b if b > 0 else length + 1 + b for b in bounds)
    return first <= value <= last


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRange(_Strict):
    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(f"start_time {self.start_time} must be before end_time {self.end_time}")
        return self

    def contains(self, minute_of_day: int) -> bool:
        return _minutes(self.start_time) <= minute_of_day < _minutes(self.end_time)


class TimeInterval(_Strict):
    times: list[TimeRange] = []
    weekdays: list[Annotated[str, _checked(WEEKDAYS, 1, 7)]] = []
    days_of_month: list[Annotated[str, _checked(None, -31, 31)]] = []
    months: list[Annotated[str, _checked(MONTHS, 1, 12)]] = []
    location: ZoneName = "UTC"

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(iana_time_zone(self.location))
        month_length = calendar.monthrange(local.year, local.month)[1]
        checks = (
            (self.times, lambda r: r.contains(local.hour * 60 + local.minute)),
            (self.weekdays, lambda w: _within(local.isoweekday(), _range(w, WEEKDAYS, 1, 7), 7)),
            (self.days_of_month, lambda d: _within(local.day, _range(d, None, -31, 31), month_length)),
            (self.months, lambda m: _within(local.month, _range(m, MONTHS, 1, 12), 12)),
        )
        return all(not given or any(map(matches, given)) for given, matches in checks)


class NamedTimeInterval(_Strict):
    name: str = Field(min_length=1, max_length=100)
    time_intervals: list[TimeInterval] = Field(min_length=1)

    def contains(self, at: datetime) -> bool:
        return any(interval.contains(at) for interval in self.time_intervals)
