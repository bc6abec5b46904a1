"""Alertmanager-style matchers: equality, anchored regex, negation, missing label as empty."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from functions.fanout.matchers import Matcher, alert_labels
from tests.fanout.conftest import make_transition


def test_equal_regex_and_negation() -> None:
    labels = {"service": "persona-router", "region": "us-central1"}
    assert Matcher(name="service", value="persona-router").matches(labels)
    assert Matcher(name="region", value="us-.*", isRegex=True).matches(labels)
    assert not Matcher(name="region", value="us", isRegex=True).matches(labels)  # anchored
    assert Matcher(name="region", value="europe-west1", isEqual=False).matches(labels)
    assert Matcher(name="team", value="").matches(labels)  # missing label is ""
    assert not Matcher(name="team", value="sre").matches(labels)


def test_a_bad_regex_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        Matcher(name="rule", value="(", isRegex=True)


def test_alert_labels_carry_rule_severity_and_metric() -> None:
    labels = alert_labels(make_transition(severity="high"))
    assert labels["alertname"] == labels["rule"] == "p95-latency"
    assert labels["severity"] == "high"
    assert labels["service"] == "persona-router"
