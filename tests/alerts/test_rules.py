"""Rules: the default file loads, every mistake names the rule and the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from functions.alerts.durations import parse_duration
from functions.alerts.rules import AnomalyRule, RulesError, active_rules, load_rules, parse_rules

BASE = {"metric": "m", "severity": "high", "annotations": {"summary": "s"}}


def test_default_rules_cover_the_seeds_low_tier_and_the_slo() -> None:
    rules = {r.name: r for r in load_rules()}
    kinds = {r.kind for r in rules.values()}
    assert kinds == {"threshold", "absence", "anomaly", "trend", "slo_burn_rate", "heartbeat"}
    severities = {r.severity for r in rules.values()}
    assert severities == {"critical", "high", "medium", "low"}
    assert rules["latency-p95-high"].threshold == 0.1
    assert rules["latency-p95-high"].metric == "http.server.request.duration"
    assert rules["error-rate-critical"].ratio.numerator.present == ["error.type"]
    assert any("Rollback" in s or "roll back" in s for s in rules["error-rate-critical"].annotations.runbook)
    slo = rules["availability-slo-fast-burn"]
    assert slo.objective == 0.9995
    assert [(w.long, w.short, w.factor) for w in slo.burn_windows] == [
        (timedelta(hours=1), timedelta(minutes=5), 14.4),
        (timedelta(hours=6), timedelta(minutes=30), 6),
    ]
    assert rules["availability-slo-slow-burn"].burn_windows[0].long == timedelta(days=3)
    assert all(r.annotations.summary for r in rules.values())


def test_errors_name_rule_and_field() -> None:
    raw = {
        "rules": [
            {"name": "good", "op": ">", "threshold": 1, **BASE},
            {"name": "bad-threshold", "op": ">", "threshold": "lots", **BASE},
            {"name": "bad-window", "op": ">", "threshold": 1, "window": "5 minutes", **BASE},
            {"name": "bad-kind", "kind": "magic", **BASE},
            {"op": "!=", "threshold": 1, **BASE},
            {"name": "good", "op": "<", "threshold": 2, **BASE},
            {"name": "hyst", "op": ">", "threshold": 1, "clear_threshold": 2, **BASE},
        ]
    }
    with pytest.raises(RulesError) as caught:
        parse_rules(raw, "test.yaml")
    found = {(e["rule"], e["field"]) for e in caught.value.errors}
    assert ("rule 'bad-threshold' (rules[1])", "threshold") in found
    assert ("rule 'bad-window' (rules[2])", "window") in found
    assert ("rule 'bad-kind' (rules[3])", "kind") in found
    assert ("rules[4]", "name") in found
    assert ("rules[4]", "op") in found
    assert ("rule 'good' (rules[5])", "name") in found  # duplicate
    assert any(
        e["rule"].startswith("rule 'hyst'") and "clear_threshold" in e["message"] for e in caught.value.errors
    )
    message = str(caught.value)
    assert "test.yaml" in message
    assert "bad-window" in message
    assert "5 minutes" in message


def test_missing_fields_per_kind_are_reported() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"rules": [{"name": "slo", "kind": "slo_burn_rate", **BASE}]})
    assert {e["field"] for e in caught.value.errors} == {"objective", "ratio"}
    with pytest.raises(RulesError) as caught:
        parse_rules({"rules": [{"name": "a", "kind": "absence", "window": "2h", "lookback": "1h", **BASE}]})
    assert "lookback must be longer" in caught.value.errors[0]["message"]
    with pytest.raises(RulesError, match="top-level `rules:` list"):
        parse_rules({"alerts": []})


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration(45) == timedelta(seconds=45)
    for bad in ("", "5x", "-1m", True):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_rules_file_from_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: only, metric: m, op: '>', threshold: 3, severity: low, annotations: {summary: s}}\n"
    )
    monkeypatch.setenv("ION_RULES_FILE", str(path))
    assert [r.name for r in active_rules()] == ["only"]
    path.write_text(
        "rules:\n  - {name: broken, metric: m, op: '>', severity: low, annotations: {summary: s}}\n"
    )
    with pytest.raises(RulesError, match=r"broken.*threshold"):
        load_rules()


def test_an_anomaly_step_is_whole_minutes() -> None:
    base = {"kind": "anomaly", "name": "r", "metric": "m", "agg": "count", "severity": "low"}
    assert AnomalyRule.model_validate(
        {**base, "annotations": {"summary": "s"}, "step": "2m"}
    ).step == timedelta(minutes=2)
    for bad in ("90s", "0s"):
        with pytest.raises(ValidationError, match="not a whole number of minutes"):
            AnomalyRule.model_validate({**base, "annotations": {"summary": "s"}, "step": bad})


def test_a_summary_naming_a_label_no_alert_has_is_refused() -> None:
    # group_by [service]: every alert's labels are {service}, so {labels.region} would page as is.
    raw = {
        "rules": [
            {"name": "p95", "op": ">", "threshold": 1, "group_by": ["service"], **BASE},
            {
                "name": "jobs",
                "kind": "heartbeat",
                "severity": "high",
                "annotations": {"summary": "{labels.job}"},
            },
        ]
    }
    raw["rules"][0]["annotations"] = {"summary": "{labels.service} in {labels.region}: {value}"}
    with pytest.raises(RulesError) as caught:
        parse_rules(raw)
    assert [(e["rule"], e["field"]) for e in caught.value.errors] == [
        ("rule 'p95' (rules[0])", "annotations")
    ]
    assert "region" in caught.value.errors[0]["message"]
    raw["rules"][0]["annotations"] = {"summary": "{labels.service}", "description": "{labels.zone}"}
    with pytest.raises(RulesError, match="zone"):
        parse_rules(raw)
    raw["rules"][0]["annotations"] = {"summary": "{labels.service}: {value} > {threshold} ({labels})"}
    assert [r.name for r in parse_rules(raw)] == ["p95", "jobs"]
