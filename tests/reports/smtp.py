"""A real SMTP server for the report tests (aiosmtpd) that requires STARTTLS, with a certificate
of its own made by openssl for 127.0.0.1; the mail it receives, with whether it came over TLS."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "smtp.pem", folder / "smtp.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool


@dataclass
class Inbox:
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, session.ssl is not None)  # type: ignore[arg-type]
            )
        return "250 OK"


class SmtpServer:
    def __init__(self, folder: Path, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.cert, key = make_certificate(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.inbox = Inbox()
        self.port = port
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
