"""Settings from the environment, Cloud Logging JSON, and the injectable clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.clock import FrozenClock, SystemClock, get_clock, iana_time_zone, set_clock, utcnow
from shared.logging import CloudLoggingFormatter, parse_trace_header, redact, reset_trace, set_trace
from shared.settings import Settings, get_settings


def test_settings_are_read_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p-1")
    monkeypatch.setenv("ION_MAX_BODY_BYTES", "2048")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.project == "p-1"
    assert settings.max_body_bytes == 2048
    assert get_settings() is settings  # read once


def test_a_bad_setting_is_an_error_naming_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_MAX_BODY_BYTES", "-1")
    with pytest.raises(ValidationError, match="ION_MAX_BODY_BYTES"):
        Settings()


@pytest.mark.parametrize(
    ("traceparent", "cloud", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        ),
        (None, "105445aa7843bc8bf206b12000100000/1;o=1", ("105445aa7843bc8bf206b12000100000", "1")),
        ("garbage", None, None),
        (None, None, None),
    ],
)
def test_trace_headers(traceparent, cloud, expected) -> None:  # type: ignore[no-untyped-def]
    assert parse_trace_header(traceparent, cloud) == expected


def test_log_lines_are_cloud_logging_json_with_trace_and_extra_fields() -> None:
    formatter = CloudLoggingFormatter("proj")
    record = logging.LogRecord("ion.x", logging.WARNING, "f.py", 7, "hello %s", ("world",), None)
    record.rule = "HighLatency"
    token = set_trace(("abc", "def"))
    try:
        entry = json.loads(formatter.format(record))
    finally:
        reset_trace(token)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello world"
    assert entry["logging.googleapis.com/trace"] == "projects/proj/traces/abc"
    assert entry["logging.googleapis.com/spanId"] == "def"
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == 7
    assert entry["rule"] == "HighLatency"


def test_redact_replaces_every_secret_given_the_longest_first() -> None:
    text = "key=abc123 url=https://x.example/abc123/more token=abc"
    # The URL before its part: replacing the part first would leave the rest of the URL behind.
    assert redact(text, ["abc123", None, "", "https://x.example/abc123/more"]) == (
        "key=[redacted] url=[redacted] token=abc"
    )
    assert redact(text, []) == text


def test_the_clock_is_injectable() -> None:
    frozen = FrozenClock(datetime(2026, 3, 1, tzinfo=UTC))
    previous = set_clock(frozen)
    assert isinstance(previous, SystemClock)
    assert get_clock() is frozen
    frozen.advance(timedelta(minutes=3))
    assert utcnow() == datetime(2026, 3, 1, 0, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2026, 3, 1))


def test_rfc3339_parsing_and_formatting_in_one_place() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from shared.clock import format_rfc3339, parse_rfc3339

    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_rfc3339("2026-01-01T12:00:00Z") == noon
    assert parse_rfc3339(" 2026-01-01T12:00:00z ") == noon
    # A query string decodes the offset's '+' to a space.
    assert parse_rfc3339("2026-01-01T14:00:00 02:00") == noon
    assert parse_rfc3339("2026-01-01 12:00").tzinfo is None  # the caller decides
    assert format_rfc3339(noon) == "2026-01-01T12:00:00Z"
    assert format_rfc3339(noon.astimezone(timezone(timedelta(hours=2)))) == "2026-01-01T14:00:00+02:00"
    with pytest.raises(ValueError):  # noqa: PT011 - datetime's own message
        parse_rfc3339("yesterday")


@pytest.mark.parametrize("name", ["Pacific", "America", "Nope/Zone", "", "../etc/passwd", "Europe/"])
def test_a_name_that_is_not_a_time_zone_is_a_value_error_whatever_zoneinfo_raises(name: str) -> None:
    """ZoneInfo raises IsADirectoryError for an area such as Pacific when it reads the tzdata
    package (a requirement): a check catching only its not-found error answered 500."""
    with pytest.raises(ValueError, match="not an IANA time zone"):
        iana_time_zone(name)


def test_a_time_zone_is_found_in_the_tzdata_package_too() -> None:
    assert iana_time_zone("America/Los_Angeles").key == "America/Los_Angeles"
    from importlib.resources import files

    assert files("tzdata").joinpath("zoneinfo", "Pacific").is_dir()  # the case above is real here
