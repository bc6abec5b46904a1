"""Email over SMTP (smtplib): a multipart/alternative mail with a plain-text part and an HTML
part rendered by Jinja2 (autoescaped), to ``ALERT_EMAIL_TO`` (comma-separated; a label route's
``email_to`` instead, carried by the notification) from ``ALERT_EMAIL_FROM``. TLS with a verified
certificate when deployed (STARTTLS, or implicit TLS on port 465; ``SMTP_STARTTLS`` overrides,
``SMTP_CA_FILE`` names a private CA), and ``SMTP_USER``/``SMTP_PASSWORD`` when the relay needs
them. 4xx SMTP replies and connection failures are retried; 5xx replies, a certificate that does
not verify and a server without STARTTLS are not.

The Message-ID is derived from the notification id, so a mail resent after a crash between the
SMTP ``DATA`` and our bookkeeping carries the same Message-ID and mail clients thread it as one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from email.message import EmailMessage
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.fanout.channels.base import DeliveryError, Retrier
from functions.fanout.channels.registry import register, require
from functions.fanout.models import Notification, iso, summary_of, value_text
from functions.fanout.settings import FanoutSettings
from shared.notices import recipient_of

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(summary_of=summary_of, value_text=value_text, iso=iso)
    return env


def render(name: str, **context: Any) -> tuple[str, str]:
    """(text, html) from ``<name>.txt.j2`` and ``<name>.html.j2``."""
    env = templates()
    return env.get_template(f"{name}.txt.j2").render(**context), env.get_template(f"{name}.html.j2").render(
        **context
    )


def valid_address(address: str) -> bool:
    """One plain address (what the producers validate too): anything else is not mailed."""
    return bool(re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+", address)) and len(address) <= 254


# A mail lists this many alerts of its group at most (as Slack shows), then counts the rest: a
# storm's group of 500 made a mail of a megabyte.
MAX_ALERTS_MAILED = 50
# A subject in this many characters at most (a storm's subject was kilobytes); the email package
# folds it into header lines of 78, as RFC 5322 recommends.
SUBJECT_MAX = 150


def header_line(value: str) -> str:
    """A value (labels, annotations) on one header line: a CR or LF would start another header
    (``Bcc:``), and the email package refuses it outright, which retried the send forever; any
    other control character (NUL, ESC) is no header text either, and a relay may refuse it."""
    spaced = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value)
    return " ".join(spaced.split())


def subject_line(value: str) -> str:
    """A mail's subject: on one header line, at most ``SUBJECT_MAX`` characters."""
    line = header_line(value)
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1].rstrip() + "…"


@register("email", requires=("smtp_host", "alert_email_to"))
class EmailChannel:
    name = "email"

    def __init__(self, settings: FanoutSettings) -> None:
        require("email", settings)
        self.settings = settings
        self.recipients = [r.strip() for r in str(settings.alert_email_to).split(",") if r.strip()]

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        text, html = render(
            "alert",
            notification=notification,
            listed=notification.alerts[:MAX_ALERTS_MAILED],
            not_listed=Counter(a.state for a in notification.alerts[MAX_ALERTS_MAILED:])
            + Counter(firing=notification.alerts_left_out),
            silences_url=self.settings.public_url.rstrip("/") + "/v1/silences",
            dashboard_url=self.settings.dashboard_url,
        )
        # A notice naming its recipient (a success manager) is mailed to them beside the team.
        named = [r for r in dict.fromkeys(map(recipient_of, notification.alerts)) if r and valid_address(r)]
        return self.send_mail(
            notification.title(),
            text,
            html,
            notification.notification_id,
            retrier,
            also=named,
            to=notification.route_email_to or None,
        )

    def send_mail(
        self,
        subject: str,
        text: str,
        html: str,
        key: str,
        retrier: Retrier,
        *,
        also: list[str] | None = None,
        to: list[str] | None = None,
    ) -> dict[str, Any]:
        """Mail ``to`` (a label route's list; default ``ALERT_EMAIL_TO``) and ``also``."""
        recipients = list(dict.fromkeys([*(to or self.recipients), *(also or [])]))
        message = EmailMessage()
        message["Subject"] = subject_line(subject)
        message["From"] = self.settings.alert_email_from
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(usegmt=True)
        domain = self.settings.alert_email_from.rsplit("@", 1)[-1] or "ion-ops"
        message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        retrier.step("mail", "smtp send", lambda: self._send(message, recipients))
        return {"message_id": message["Message-ID"], "to": recipients}

    def _send(self, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
        return send_mail(self.settings, message, recipients)


def send_mail(settings: FanoutSettings, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
    """``message`` to ``recipients`` through the team's SMTP relay; a refusal as a DeliveryError
    (retryable when the relay said so). The email and contact channels both send this way."""
    from shared.smtp import SmtpError, send_message

    try:
        send_message(
            message,
            recipients,
            host=str(settings.smtp_host),
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            timeout=settings.request_timeout_seconds,
            ca_file=settings.smtp_ca_file,
            user=settings.smtp_user,
            password=settings.smtp_password,
        )
    except SmtpError as exc:
        raise DeliveryError(str(exc), retryable=exc.retryable) from None
    return {"accepted": True}
