"""An injectable clock so that time-based logic (windows, TTLs, cooldowns) is testable."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = at

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, at: datetime) -> None:
        self._now = at


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` process-wide and return the previous one (for restoring in tests)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def utcnow() -> datetime:
    return _clock.now()


def parse_rfc3339(text: str) -> datetime:
    """A time as RFC 3339 writes it (``Z``/``z`` or an offset; a ``+`` that a query string decoded to
    a space is read as ``+``). The result is naive when the text names no time zone: callers decide
    whether that is an error or UTC. Raises ``ValueError`` for anything else."""
    raw = text.strip()
    if raw[-1:] in ("Z", "z"):
        raw = raw[:-1] + "+00:00"
    time_at = raw.find("T")
    if time_at > 0:  # only an offset after the time can have lost its '+'
        raw = raw[:time_at] + raw[time_at:].replace(" ", "+")
    return datetime.fromisoformat(raw)


def _as_rfc3339(value: Any) -> Any:
    """Text read as :func:`parse_rfc3339` does (a ``+`` the query string decoded to a space is a
    ``+``); anything it cannot read goes on to pydantic, whose error names the field."""
    if isinstance(value, str):
        try:
            return parse_rfc3339(value)
        except ValueError:
            return value
    return value


# A time in a query string: ``?since=2026-03-29T03:30:00+02:00`` typed as is means +02:00, as
# ``parse_rfc3339`` reads it everywhere else; without a zone it is refused (which day is it?).
QueryTime = Annotated[AwareDatetime, BeforeValidator(_as_rfc3339)]


_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_only(value: Any) -> Any:
    """A day as a date or YYYY-MM-DD text. pydantic alone also takes a midnight with any offset
    (``2026-11-01T00:00:00+09:00``, still 31 October in Los Angeles) or a Unix time, and drops
    the zone: a day is asked for by its date, in the zone the API counts days in."""
    text = isinstance(value, str) and _DATE_TEXT.fullmatch(value) is not None
    if not text and (isinstance(value, datetime) or not isinstance(value, date)):
        raise ValueError("is not a date; write it as YYYY-MM-DD, e.g. 2026-03-08")
    return value


# A day in a query string or body: YYYY-MM-DD only (what the contracts say each takes).
CalendarDate = Annotated[date, BeforeValidator(_date_only)]


def iana_time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or ``ValueError``. ``ZoneInfo`` alone raises three kinds of
    error for a name that is not a zone: ``ZoneInfoNotFoundError`` for an unknown key,
    ``ValueError`` for a malformed one, and, read from the ``tzdata`` package, ``IsADirectoryError``
    for an area such as ``Pacific`` (a folder there), which a check of the first two let through."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone") from None


def _zone_name(name: str) -> str:
    iana_time_zone(name)  # raises ValueError naming it
    return name


# A configuration field holding an IANA time zone name, checked when the model is validated.
ZoneName = Annotated[str, AfterValidator(_zone_name)]


def format_rfc3339(at: datetime) -> str:
    """``2026-01-01T12:00:00Z`` for UTC, the offset otherwise."""
    return at.isoformat().replace("+00:00", "Z")
