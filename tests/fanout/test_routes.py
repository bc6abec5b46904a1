"""The routing file: the default routes as the seeds say, validated at load with errors naming
the file and the field; ION_FANOUT_ROUTING_FILE points at another."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from functions.fanout.route_models import parse_duration
from functions.fanout.routes import RoutingError, get_routing, load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from tests.fanout.conftest import make_transition, reset_fanout_caches


def test_default_routes_follow_the_seeds() -> None:
    routing = load_routing(DEFAULT_ROUTING_FILE)
    assert routing.route("critical").channels == ["pagerduty", "slack"]
    assert "@oncall" in (routing.route("critical").mention or "")
    assert routing.route("critical").repeat_interval == timedelta(minutes=30)
    assert routing.route("critical").group_wait == timedelta(0)
    assert routing.route("high").channels == ["slack", "email"]
    assert routing.route("medium").channels == ["slack"]
    assert routing.route("low").channels == ["log"]
    assert routing.group_by == ["rule", "service", "region"]


def test_group_is_severity_and_group_by_labels() -> None:
    routing = load_routing(DEFAULT_ROUTING_FILE)
    a = make_transition(endpoint="/a")
    b = make_transition(endpoint="/b")
    c = make_transition(region="europe-west1")
    d = make_transition(severity="high")
    assert routing.group_id(a) == routing.group_id(b)
    assert len({routing.group_id(x) for x in (a, c, d)}) == 3
    assert routing.group_labels(a) == {
        "rule": "p95-latency",
        "service": "persona-router",
        "region": "us-central1",
    }


def test_inhibition_rule_needs_equal_labels() -> None:
    [rule] = load_routing(DEFAULT_ROUTING_FILE).inhibit_rules
    critical = {"severity": "critical", "service": "s", "region": "r"}
    assert rule.inhibits(critical, {"severity": "high", "service": "s", "region": "r"})
    assert not rule.inhibits(critical, {"severity": "high", "service": "s", "region": "other"})
    assert not rule.inhibits(critical, {"severity": "critical", "service": "s", "region": "r"})
    assert not rule.inhibits(
        {**critical, "severity": "high"}, {"severity": "low", "service": "s", "region": "r"}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severities: {critical: {channels: [slack]}}", "missing: high, medium, low"),
        ("severities: {critical: {channels: [fax]}}", "severities.critical.channels.0"),
        ("severities: {critical: {channels: [slack], group_wait: soon}}", "not a duration"),
        ("group_by: [rule]\nbogus: 1\nseverities: {}", "bogus"),
        ("- just a list", "must be a mapping"),
        ("severities: [unclosed", "not valid YAML"),
    ],
)
def test_invalid_files_are_refused_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(RoutingError, match=message) as info:
        load_routing(path)
    assert str(path) in str(info.value)


def test_the_environment_points_at_another_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "routing.yaml"
    routes = "\n".join(
        f"  {s}: {{channels: [log], group_wait: 1m}}" for s in ("critical", "high", "medium", "low")
    )
    path.write_text(f"group_by: [service]\nseverities:\n{routes}\n")
    monkeypatch.setenv("ION_FANOUT_ROUTING_FILE", str(path))
    reset_fanout_caches()
    try:
        assert get_routing().route("critical").channels == ["log"]
        assert get_routing().group_by == ["service"]
    finally:
        reset_fanout_caches()


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("0s") == timedelta(0)
    assert parse_duration(45) == timedelta(seconds=45)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")
