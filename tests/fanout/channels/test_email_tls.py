"""SMTP over TLS with a verified certificate when deployed: aiosmtpd with a self-signed
certificate is refused at once (a permanent failure for that message, never a retry loop), and
accepted only when that certificate is named as the CA."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.processes import free_port
from functions.fanout.channels.base import DeliveryFailed, Retrier
from functions.fanout.channels.email import EmailChannel
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from tests.fanout.conftest import make_transition
from tests.fanout.smtp_standin import SmtpServer, _SmtpHandler


class StartTlsSmtpServer(SmtpServer):
    """aiosmtpd that offers STARTTLS with ``cert`` and refuses mail before it."""

    def __init__(self, cert: Path, key: Path) -> None:
        from aiosmtpd.controller import Controller

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.port = free_port()
        self.mails = []
        self.envelopes = []
        self.refuse = False
        self.controller = Controller(
            _SmtpHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
        )
        self.controller.start()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_smtp(self_signed: tuple[Path, Path]) -> Iterator[StartTlsSmtpServer]:
    server = StartTlsSmtpServer(*self_signed)
    yield server
    server.close()


def send(port: int, **env: str) -> tuple[Retrier, Exception | None]:
    os.environ.update(
        {
            "K_SERVICE": "fan-out-alerts",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "ALERT_EMAIL_FROM": "ion-ops@example.com",
            "ALERT_EMAIL_TO": "oncall@example.com",
            **env,
        }
    )
    notification = Notification(
        notification_id="n-tls",
        kind="notify",
        group_id="g",
        group_labels={},
        severity="high",
        alerts=[make_transition(severity="high")],
        created_at=datetime.now(UTC),
    )
    retrier = Retrier(max_attempts=3, budget_seconds=5, base_delay=0.01, max_delay=0.05)
    try:
        EmailChannel(FanoutSettings()).send(notification, retrier)
    except DeliveryFailed as failed:
        return retrier, failed
    return retrier, None


def test_deployed_a_self_signed_certificate_is_refused_once_and_nothing_is_sent(
    tls_smtp: StartTlsSmtpServer,
) -> None:
    retrier, failed = send(tls_smtp.port)
    assert failed is not None
    assert "does not verify" in str(failed)
    assert "not retryable" in str(failed)
    assert retrier.attempts == 1
    assert tls_smtp.mails == []


def test_deployed_the_same_server_is_used_when_its_certificate_is_trusted(
    tls_smtp: StartTlsSmtpServer, self_signed: tuple[Path, Path]
) -> None:
    _, failed = send(tls_smtp.port, SMTP_CA_FILE=str(self_signed[0]))
    assert failed is None
    assert len(tls_smtp.mails) == 1


def test_deployed_a_server_without_starttls_gets_nothing_in_clear(smtp: SmtpServer) -> None:
    retrier, failed = send(smtp.port)
    assert failed is not None
    assert "does not offer STARTTLS" in str(failed)
    assert retrier.attempts == 1
    assert smtp.mails == []


def test_locally_plain_smtp_is_the_default(smtp: SmtpServer) -> None:
    os.environ.pop("K_SERVICE", None)
    _, failed = send(smtp.port, K_SERVICE="")
    assert failed is None
    assert len(smtp.mails) == 1
