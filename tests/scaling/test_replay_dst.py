"""A replay trace written in local wall-clock time without offsets (``--tz``): the hour the clocks
go back appears twice in the file and is two hours of traffic; a time the clocks skip is no time,
and the file is refused naming its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from functions.scaling.replay import TraceError, read_trace

CHICAGO = ZoneInfo("America/Chicago")


def local_rows(first: datetime, count: int) -> list[str]:
    """Each minute from ``first`` (aware) as a naive local timestamp, as a wall clock shows it."""
    stamps = [(first + timedelta(minutes=i)).astimezone(CHICAGO) for i in range(count)]
    return [f"{s.replace(tzinfo=None).isoformat()},10" for s in stamps]


def test_the_repeated_hour_when_summer_time_ends_is_two_hours(tmp_path: Path) -> None:
    # 2026-11-01 in Chicago: 01:00-01:59 CDT, then 01:00-01:59 CST again; 00:00 CDT is 05:00 UTC.
    start = datetime(2026, 11, 1, 5, tzinfo=UTC)
    path = tmp_path / "fall.csv"
    path.write_text("timestamp,requests\n" + "\n".join(local_rows(start, 4 * 60)) + "\n")
    trace = read_trace(path, CHICAGO)
    assert trace.minutes == [start + timedelta(minutes=i) for i in range(4 * 60)]
    assert set(trace.requests) == {10.0}
    # Written back as the file writes it: the repeated hour reads as it did.
    assert trace.format(trace.minutes[60]) == "2026-11-01T01:00:00"
    assert trace.format(trace.minutes[120]) == "2026-11-01T01:00:00"


def test_the_hour_the_clocks_skip_is_refused_with_its_line(tmp_path: Path) -> None:
    # 2026-03-08 in Chicago: 01:59 CST is followed by 03:00 CDT; 02:30 is on no clock.
    path = tmp_path / "spring.csv"
    path.write_text(
        "timestamp,requests\n2026-03-08T01:59:00,10\n2026-03-08T02:30:00,10\n2026-03-08T03:00:00,10\n"
    )
    with pytest.raises(TraceError) as caught:
        read_trace(path, CHICAGO)
    assert "line 3" in str(caught.value)
    assert "America/Chicago" in str(caught.value)


def test_a_trace_across_the_spring_change_is_every_minute(tmp_path: Path) -> None:
    start = datetime(2026, 3, 8, 6, tzinfo=UTC)  # 00:00 CST
    path = tmp_path / "spring-ok.csv"
    path.write_text("timestamp,requests\n" + "\n".join(local_rows(start, 4 * 60)) + "\n")
    trace = read_trace(path, CHICAGO)
    assert trace.minutes == [start + timedelta(minutes=i) for i in range(4 * 60)]
