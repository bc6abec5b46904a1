"""The time grid of the forecast: minutes, quarter-hours and hours in UTC, and the seasonal lags
counted in local calendar days, so that a DST change does not shift the daily pattern by an hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def floor_quarter(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def lagged_hour(hour: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The UTC hour that was the same local wall-clock hour ``days`` days earlier (DST-aware)."""
    local = hour.astimezone(zone).replace(tzinfo=None) - timedelta(days=days)
    return floor_hour(local.replace(tzinfo=zone).astimezone(UTC))


def lagged_quarter(quarter: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The UTC quarter-hour that was the same local wall-clock quarter ``days`` days earlier."""
    local = quarter.astimezone(zone).replace(tzinfo=None) - timedelta(days=days)
    return floor_quarter(local.replace(tzinfo=zone).astimezone(UTC))


def seasonal_lags(target_local: datetime) -> list[int]:
    """Days back to the seasonal candidates: the two latest days of the same kind (weekday or
    weekend) within six, and the same weekday one and two weeks before."""
    weekend = target_local.weekday() >= 5
    same_kind = [k for k in range(1, 7) if ((target_local - timedelta(days=k)).weekday() >= 5) == weekend]
    return sorted({*same_kind[:2], 7, 14})
