"""Values in summaries, Slack, mail, incidents and pages: four significant digits, but an everyday
count is never written with an exponent (an on-call engineer read ``1.235e+06`` requests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.numbers import readable


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.25314, "0.2531"),
        (12.345, "12.35"),
        (1234.0, "1234"),
        (12345.0, "12,345"),
        (1234567.0, "1,234,567"),
        (-98765.4, "-98,765"),
        (0.0, "0"),
        (3e-7, "3e-07"),
    ],
)
def test_readable(value: float, text: str) -> None:
    assert readable(value) == text


def test_an_alert_summary_and_its_notification_say_the_count_plainly() -> None:
    from functions.alerts.annotations import render
    from functions.fanout.models import value_text
    from shared.messages import AlertTransition

    assert (
        render("{value} requests per 5 minutes", {}, 1234567.0, 100000.0)
        == "1,234,567 requests per 5 minutes"
    )
    at = datetime(2026, 12, 7, tzinfo=UTC)
    transition = AlertTransition(
        transition_id="t",
        fingerprint="f",
        rule="request-rate-unusual",
        kind="anomaly",
        state="firing",
        previous_state="pending",
        severity="low",
        metric="http.server.request.duration",
        labels={},
        annotations={"summary": "s"},
        value=1234567.0,
        threshold=100000.0,
        op=">",
        starts_at=at,
        evaluated_at=at,
    )
    assert value_text(transition) == "1,234,567 (> threshold 100,000)"
