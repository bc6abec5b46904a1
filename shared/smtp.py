"""Sending a built mail over SMTP, for every capability that mails (fan-out's email channel, the
reports): TLS with a verified certificate (STARTTLS, or implicit TLS), a login when configured, and
every failure told apart as worth retrying or not. smtplib and ssl are imported on first send."""

from __future__ import annotations

import re
from collections import Counter
from email.message import EmailMessage
from typing import Literal

from shared.logging import redact

TlsMode = Literal["starttls", "implicit", "none"]
_ADDRESS = re.compile(r"<?[^\s<>@,;:\"']+@[^\s<>@,;:\"']+>?")


class SmtpError(Exception):
    """The mail was not accepted; ``retryable``: a 4xx answer or a connection failure, not a
    certificate that does not verify, a server without STARTTLS, or a 5xx answer."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def send_message(
    message: EmailMessage,
    recipients: list[str],
    *,
    host: str,
    port: int,
    tls: TlsMode,
    timeout: float,
    ca_file: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> None:
    """Send ``message`` to ``recipients``; the certificate is checked against the system CAs plus
    ``ca_file``. Raises ``SmtpError`` unless every recipient was accepted."""
    import smtplib
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    try:
        with (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            if tls == "implicit"
            else smtplib.SMTP(host, port, timeout=timeout)
        ) as smtp:
            if tls == "starttls":
                smtp.starttls(context=context)  # SMTPNotSupportedError when the server lacks it
            if user and password:
                smtp.login(user, password)
            refused = smtp.send_message(message, to_addrs=recipients)
    except ssl.SSLCertVerificationError as exc:
        # Not a passing fault: the same certificate will fail the same way on every retry.
        raise SmtpError(
            f"SMTP server {host}:{port} presented a certificate that does not verify "
            f"({exc.verify_message}); nothing was sent",
            retryable=False,
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SmtpError(
            f"SMTP server {host}:{port} does not offer STARTTLS ({exc}); nothing is sent in clear",
            retryable=False,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise SmtpError(
            f"SMTP refused every recipient: {refusals(exc.recipients)}",
            retryable=all(400 <= c < 500 for c in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:
        # A reply to AUTH may quote what it was sent: the password goes, with every address.
        answered = redact(without_addresses(exc.smtp_error), [password])
        raise SmtpError(
            f"SMTP answered {exc.smtp_code} {answered!r}",
            retryable=400 <= exc.smtp_code < 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpError(f"SMTP failed: {exc}", retryable=True) from None
    if refused:
        raise SmtpError(f"SMTP refused some recipients: {refusals(refused)}", retryable=False)


def without_addresses(reply: bytes | str) -> str:
    """A server's reply with every mail address in it replaced (relays quote the recipient)."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return _ADDRESS.sub("<address>", text)


def refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    """How many recipients the server refused with which codes, never who: the text goes to logs,
    dead-letter reasons and incident timelines, which keep no customer's address (a contact's
    address is personal data that erasure cannot reach there)."""
    codes = Counter(code for code, _ in refused.values())
    listed = ", ".join(f"{count} with {code}" for code, count in sorted(codes.items()))
    return f"{len(refused)} recipient(s) ({listed})"
