"""A daily pattern on a local clock across a change of summer time: with the rule's ``time_zone``
the seasonal baseline is the same local time one day earlier, so office hours moving by an hour
in UTC are not an anomaly; on UTC slots they are, for days."""

from __future__ import annotations

import csv
import json
import math
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from functions.alerts.detector import detect
from functions.alerts.detector_config import DetectorConfig
from functions.alerts.rules import AnomalyRule
from shared.topology import ROOT

NEW_YORK = ZoneInfo("America/New_York")
FALL_BACK = datetime(2026, 11, 1, 6, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST
SPRING_FORWARD = datetime(2026, 3, 8, 7, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT


def office_hours(change: datetime, outage_day: int | None = None) -> tuple[list[datetime], list[float]]:
    """Three weeks before ``change`` and one after, every 5 minutes: 1,000 requests from 09:00 to
    17:00 New York time, 100 otherwise, 10% noise; optionally an hour at 10 from 11:00 local on
    the ``outage_day``-th day after the change."""
    rng = random.Random(7)
    times: list[datetime] = []
    values: list[float] = []
    t = change - timedelta(days=21)
    while t < change + timedelta(days=7):
        local = t.astimezone(NEW_YORK)
        hour = local.hour + local.minute / 60
        value = 1000.0 if 9 <= hour < 17 else 100.0
        days_after = (local.date() - change.astimezone(NEW_YORK).date()).days
        if outage_day is not None and days_after == outage_day and 11 <= hour < 12:
            value = 10.0
        times.append(t)
        values.append(value * math.exp(rng.gauss(0, 0.1)))
        t += timedelta(minutes=5)
    return times, values


def starts_after(change: datetime, time_zone: str | None, outage_day: int | None = None) -> list[datetime]:
    times, values = office_hours(change, outage_day)
    episodes = detect(times, values, DetectorConfig(time_zone=time_zone))
    return [times[e.start] for e in episodes if times[e.start] >= change]


@pytest.mark.parametrize("change", [FALL_BACK, SPRING_FORWARD], ids=["fall-back", "spring-forward"])
def test_office_hours_moving_in_utc_page_on_utc_slots_and_not_on_the_local_clock(change: datetime) -> None:
    on_utc = starts_after(change, None)
    # The defect the setting exists for: the ramps of the day read as anomalies after the change.
    assert on_utc, "UTC slots should have paged at the shifted office hours"
    assert all(start < change + timedelta(days=3) for start in on_utc)
    assert starts_after(change, "America/New_York") == []


def test_an_outage_after_the_change_still_pages_on_the_local_clock() -> None:
    starts = starts_after(FALL_BACK, "America/New_York", outage_day=2)
    assert len(starts) == 1
    local = starts[0].astimezone(NEW_YORK)
    assert (local.day, local.hour) == (3, 11), local


def test_a_rule_names_an_iana_zone() -> None:
    common = {"kind": "anomaly", "name": "signups", "metric": "m", "agg": "sum", "severity": "low"}
    annotations = {"summary": "s"}
    rule = AnomalyRule.model_validate({**common, "annotations": annotations, "time_zone": "America/New_York"})
    assert rule.time_zone == "America/New_York"
    for bad in ("Pacific", "Mars/Olympus", "EST+5"):
        with pytest.raises(ValidationError, match="IANA time zone"):
            AnomalyRule.model_validate({**common, "annotations": annotations, "time_zone": bad})


def _write(path: Path, times: list[datetime], values: list[float]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for t, v in zip(times, values, strict=True):
            writer.writerow([t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{v:.3f}"])


def _backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "functions.alerts.backtest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_backtest_takes_the_zone_through_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "office.csv"
    _write(path, *office_hours(FALL_BACK))
    after = FALL_BACK.strftime("%Y-%m-%dT%H:%M:%SZ")

    def alerts_after(*extra: str) -> list[dict[str, str]]:
        proc = _backtest("--csv", str(path), *extra)
        assert proc.returncode == 0, proc.stderr
        return [a for a in json.loads(proc.stdout)["alerts"] if a["start"] >= after]

    assert alerts_after()
    assert alerts_after("--time-zone", "America/New_York") == []
    refused = _backtest("--csv", str(path), "--time-zone", "Pacific")
    assert refused.returncode == 2
    assert "IANA time zone" in refused.stderr


def test_zones_by_region_give_each_series_its_own_clock() -> None:
    base = {"kind": "anomaly", "name": "r", "metric": "m", "agg": "count", "severity": "low"}
    rule = AnomalyRule.model_validate(
        {
            **base,
            "annotations": {"summary": "s"},
            "group_by": ["region"],
            "time_zone": "UTC",
            "time_zones": {"region": {"europe-west1": "Europe/Brussels", "us-central1": "America/Chicago"}},
        }
    )
    assert rule.zone_for({"region": "europe-west1"}) == "Europe/Brussels"
    assert rule.zone_for({"region": "us-central1"}) == "America/Chicago"
    assert rule.zone_for({"region": "asia-southeast1"}) == "UTC"
    with pytest.raises(ValidationError, match="group_by must list"):
        AnomalyRule.model_validate({**base, "annotations": {"summary": "s"}, "time_zones": {"region": {}}})
    with pytest.raises(ValidationError, match="IANA time zone"):
        AnomalyRule.model_validate(
            {
                **base,
                "annotations": {"summary": "s"},
                "group_by": ["region"],
                "time_zones": {"region": {"x": "Pacific"}},
            }
        )


def test_the_default_rules_follow_each_regions_clock() -> None:
    from functions.alerts.engine import DetectorCache
    from functions.alerts.rules import load_rules

    anomaly_rules = [r for r in load_rules() if isinstance(r, AnomalyRule)]
    assert anomaly_rules
    cache = DetectorCache()
    for rule in anomaly_rules:
        detector = cache.get(rule, {"region": "europe-west1"}).detector
        assert detector.config.time_zone == "Europe/Brussels", rule.name
