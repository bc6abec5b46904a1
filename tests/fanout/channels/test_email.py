"""The email channel: real mail over SMTP to aiosmtpd, HTML and text parts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from devtools.processes import free_port
from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.email import EmailChannel
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from shared.smtp import SmtpError, send_message
from tests.fanout.conftest import make_transition
from tests.fanout.smtp_standin import SmtpServer


def channel_for(smtp: SmtpServer) -> EmailChannel:
    os.environ.update(
        {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "ALERT_EMAIL_FROM": "ion-ops@example.com",
            "ALERT_EMAIL_TO": "oncall@example.com, sre@example.com",
        }
    )
    return EmailChannel(FanoutSettings())


def retrier() -> Retrier:
    return Retrier(max_attempts=3, budget_seconds=5, base_delay=0.01, max_delay=0.05)


def test_alert_mail_has_text_and_html_parts(smtp: SmtpServer) -> None:
    alert = make_transition(rule="error-rate", severity="high", value=0.012, threshold=0.005)
    alert = alert.model_copy(update={"annotations": {"summary": "Error rate <high> & rising"}})
    notification = Notification(
        notification_id="n-mail",
        kind="notify",
        group_id="g",
        group_labels={"rule": "error-rate", "service": "persona-router", "region": "us-central1"},
        severity="high",
        alerts=[alert],
        created_at=datetime.now(UTC),
    )
    channel_for(smtp).send(notification, retrier())
    [mail] = smtp.mails
    assert smtp.envelopes == [("ion-ops@example.com", ["oncall@example.com", "sre@example.com"])]
    assert mail["Subject"].startswith("[HIGH] FIRING error-rate")
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Error rate <high> & rising" in text
    assert "Error rate &lt;high&gt; &amp; rising" in html  # escaped in HTML
    assert "0.012 (> threshold 0.005)" in text
    assert "<li>Check the error dashboard</li>" in html
    assert "1. Check the error dashboard" in text


def test_a_refused_recipient_is_not_retried(smtp: SmtpServer) -> None:
    smtp.refuse = True
    channel = channel_for(smtp)
    notification = Notification(
        notification_id="n",
        kind="notify",
        group_id="g",
        group_labels={},
        severity="high",
        alerts=[make_transition(severity="high")],
        created_at=datetime.now(UTC),
    )
    r = retrier()
    with pytest.raises(DeliveryFailed, match="not retryable"):
        channel.send(notification, r)
    assert r.attempts == 1
    assert smtp.mails == []


@pytest.mark.parametrize(
    "refusal", ["450 4.2.1 mailbox busy", "550 5.1.1 <{address}>: Recipient address rejected"]
)
def test_a_refusal_names_no_recipient_in_the_log_or_the_reason(
    smtp: SmtpServer, refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A contact's address is personal data: logs and dead-letter reasons outlive its erasure.
    smtp.refuse, smtp.refusal = True, refusal
    channel = channel_for(smtp)
    r = retrier()
    with pytest.raises(DeliveryFailed) as failed:
        channel.send_mail("subject", "text", "<p>html</p>", "n-refused", r, also=["alice@customer.example"])
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert r.attempts == (3 if refusal.startswith("4") else 1)
    assert logged or not refusal.startswith("4")  # the retries were logged, with their reason
    for text in [failed.value.reason, *(json.dumps(line) for line in logged)]:
        assert "@" not in text, text
    assert "3 recipient(s)" in failed.value.reason


def test_a_reply_to_auth_quoting_the_password_has_it_redacted() -> None:
    # Some relays quote what AUTH sent them: the reply becomes a logged, dead-lettered reason.
    class Accepting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    def quoting(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        sent = f"{auth.login.decode()}:{auth.password.decode()}"
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 {sent} rejected")

    port = free_port()
    relay = Controller(
        Accepting(), hostname="127.0.0.1", port=port, authenticator=quoting, auth_require_tls=False
    )
    relay.start()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ion-ops@example.com", "oncall@example.com", "s"
    message.set_content("text")
    try:
        with pytest.raises(SmtpError) as refused:
            send_message(
                message,
                ["oncall@example.com"],
                host="127.0.0.1",
                port=port,
                tls="none",
                timeout=5,
                user="ion-relay",
                password="relay-password-0f3a9c",
            )
    finally:
        relay.stop()
    assert "relay-password-0f3a9c" not in str(refused.value)
    assert "535" in str(refused.value)
    assert "[redacted]" in str(refused.value)
