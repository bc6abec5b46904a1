"""Durations as alert rules write them: ``90s``, ``5m``, ``1h30m``, ``3d``, ``1w`` (or seconds),
read into a ``timedelta`` and written back in the same form."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``5m``, ``1h30m``, ``3d``, ``1w``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is like 30s, 5m, 1h, 3d or 1w")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is like 30s, 5m, 1h, 3d or 1w")
    text = value.strip()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 1h30m, 3d or 1w")
    return timedelta(
        seconds=sum(int(part or 0) * unit for part, unit in zip(match.groups(), _UNITS, strict=False))
    )


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for suffix, unit in zip("wdhms", _UNITS, strict=False):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


def _whole_minutes(delta: timedelta) -> timedelta:
    seconds = delta.total_seconds()
    if seconds <= 0 or seconds % 60:
        # The store answers from minute rollups, which cannot be split: a step of 90 s would hold
        # two minutes, then one (the query API refuses it, so the rule would fail every cycle).
        raise ValueError(f"{format_duration(delta)} is not a whole number of minutes, like 1m or 5m")
    return delta


# A step of points read from the store: whole minutes.
MinuteDuration = Annotated[Duration, AfterValidator(_whole_minutes)]
