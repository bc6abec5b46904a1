"""A mail in a storm: its subject readable and bounded whatever the group holds, one header line
whatever a rule name or label holds (no header injection), and its body listing 50 alerts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.fanout.channels.email import MAX_ALERTS_MAILED, SUBJECT_MAX, subject_line
from functions.fanout.models import Notification
from tests.fanout.channels.test_email import channel_for, retrier
from tests.fanout.conftest import make_transition
from tests.fanout.smtp_standin import SmtpServer


def group(alerts: list, labels: dict[str, str] | None = None) -> Notification:  # type: ignore[type-arg]
    return Notification(
        notification_id="n-storm",
        kind="notify",
        group_id="g",
        group_labels=labels if labels is not None else {"service": "persona-router", "region": "us-central1"},
        severity="high",
        alerts=alerts,
        created_at=datetime.now(UTC),
    )


def test_a_storm_of_40_rules_names_three_and_counts_the_rest(smtp: SmtpServer) -> None:
    alerts = [
        make_transition(rule=f"rule-{i % 40:02d}", severity="high", service=f"s{i}") for i in range(300)
    ]
    notification = group(alerts)
    title = notification.title()
    assert title == (
        "[HIGH] FIRING:300 40 rules: rule-00, rule-01, rule-02 and 37 more "
        "(service=persona-router, region=us-central1)"
    )
    channel_for(smtp).send(notification, retrier())
    [mail] = smtp.mails
    assert mail["Subject"].strip() == title
    assert len(mail["Subject"]) <= SUBJECT_MAX


def test_three_rules_or_fewer_are_all_named() -> None:
    alerts = [make_transition(rule=rule, severity="high") for rule in ("b", "a", "c")]
    assert group(alerts, {}).title() == "[HIGH] FIRING:3 a, b, c"


def test_a_long_rule_name_or_label_is_clipped(smtp: SmtpServer) -> None:
    notification = group([make_transition(rule="r" * 3000, severity="high")], {"service": "s" * 5000})
    channel_for(smtp).send(notification, retrier())
    [mail] = smtp.mails
    assert len(mail["Subject"]) == SUBJECT_MAX
    assert mail["Subject"].startswith("[HIGH] FIRING rrr")
    assert mail["Subject"].endswith("…")


@pytest.mark.parametrize("separator", ["\r\n", "\n", "\r", "\x00", "\u2028", "\x1b", "\x85"])
def test_no_header_is_injected_through_a_rule_or_label(smtp: SmtpServer, separator: str) -> None:
    rule = f"p95{separator}Bcc: attacker@example.net"
    labels = {"service": f"persona{separator}X-Evil: 1"}
    channel_for(smtp).send(group([make_transition(rule=rule, severity="high")], labels), retrier())
    [mail] = smtp.mails
    assert smtp.envelopes == [("ion-ops@example.com", ["oncall@example.com", "sre@example.com"])]
    assert mail["Bcc"] is None
    assert mail["X-Evil"] is None
    assert (
        mail["Subject"].strip() == "[HIGH] FIRING p95 Bcc: attacker@example.net (service=persona X-Evil: 1)"
    )


def test_a_subject_line_has_no_control_character_and_no_line_break() -> None:
    line = subject_line("a\tb\r\n\r\nc\x00d\x7fe\u2029f")
    assert line == "a b c d e f"
    assert subject_line("x" * 1000) == "x" * (SUBJECT_MAX - 1) + "…"


def test_an_incidents_title_names_three_rules_too() -> None:
    from functions.fanout.incidents import _title

    rules = [f"rule-{i:02d}" for i in range(40)]
    assert _title("critical", {"service": "api"}, rules) == (
        "[CRITICAL] 40 rules: rule-00, rule-01, rule-02 and 37 more (service=api)"
    )


def test_a_mail_lists_50_alerts_and_counts_the_rest(smtp: SmtpServer) -> None:
    alerts = [make_transition(severity="high", service=f"svc-{i:03d}") for i in range(480)]
    alerts += [make_transition(severity="high", service=f"gone-{i:03d}", state="resolved") for i in range(20)]
    channel_for(smtp).send(group(alerts), retrier())
    [mail] = smtp.mails
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.count("FIRING: ") == MAX_ALERTS_MAILED
    assert html.count("<h3>FIRING: ") == MAX_ALERTS_MAILED
    for part in (text, html):
        assert "... and 450 more alerts of this group not listed (430 firing, 20 resolved)" in part
    assert len(mail.as_bytes()) < 200_000
