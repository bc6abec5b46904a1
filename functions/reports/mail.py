"""A report as mail: an HTML part (inline CSS, tables, PNG charts inline by Content-ID, readable
with images off: every figure is in the tables and every image has alt text) beside a plain-text
part, sent over SMTP with STARTTLS and a verified certificate, never in the clear."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from functions.reports.incident_metrics import duration_text
from functions.reports.render import duration, status_label
from functions.reports.report import Report
from functions.reports.settings import ReportsSettings

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


class MailError(Exception):
    """The relay could not take the mail; ``retryable`` when a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class RenderedReport:
    subject: str
    html: str
    text: str
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode()) + sum(len(i) for i in self.images.values())


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def period_text(report: Report) -> str:
    tz = ZoneInfo(report.period.time_zone)
    start = report.period.start.astimezone(tz)
    last_day = (report.period.end.astimezone(tz)).date().toordinal() - 1
    from datetime import date

    end_day = date.fromordinal(last_day)
    if report.period.kind == "day":
        end = report.period.end.astimezone(tz)
        until = "midnight" if end.date() > start.date() else f"{end:%H:%M}"
        return f"day {report.period.label}, {start:%a %d %b %Y} 00:00 to {until} ({report.period.time_zone})"
    name = "week" if report.period.kind == "week" else "month"
    span = f"{start:%a %d %b %Y} to {end_day:%a %d %b %Y}"
    if report.period.partial:
        until = report.period.end.astimezone(tz)
        so_far = f"{start:%a %d %b %Y} to {until:%a %d %b %H:%M}"
        return f"week {report.period.label} (partial: so far), {so_far} ({report.period.time_zone})"
    return f"{name} {report.period.label}, {span} ({report.period.time_zone})"


def render_report(report: Report, settings: ReportsSettings) -> RenderedReport:
    from functions.reports.charts import line_png

    tz = ZoneInfo(report.period.time_zone)

    def local(at: datetime) -> str:
        return at.astimezone(tz).strftime("%a %d %b %H:%M %Z")

    context = {
        "report": report,
        "period_text": period_text(report),
        "status_label": status_label,
        "duration": duration,
        "local": local,
        "span": duration_text,
        "public_url": settings.public_url.rstrip("/"),
    }
    env = templates()
    html = env.get_template("report.html.j2").render(**context)
    text = env.get_template("report.txt.j2").render(**context)
    images = {
        section.chart.cid: line_png(
            section.chart.panel,
            f"{section.chart.title} ({report.period.label}, {report.period.time_zone})",
            zone=ZoneInfo(report.period.time_zone),
        )
        for section in report.sections
        if section.chart is not None
    }
    subject = f"{report.title}: {report.period.label} [{status_label(report.status)}]"
    return RenderedReport(subject=subject, html=html, text=text, images=images)


def build_message(
    rendered: RenderedReport,
    *,
    report_id: str,
    sender: str,
    recipients: list[str],
    sent_at: datetime,
    resend: int = 0,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(sent_at.timestamp(), usegmt=True)
    domain = sender.rsplit("@", 1)[-1] or "ion-ops"
    # Stable per report (and resend): a mail re-sent after a crash threads as the same message.
    key = f"{report_id}/{resend}"
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    message["X-ION-Report"] = report_id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    for cid, png in rendered.images.items():
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>", filename=f"{cid}.png")
    return message


def send(message: EmailMessage, recipients: list[str], settings: ReportsSettings) -> None:
    """STARTTLS with certificate and host name verified (the system CAs, plus
    ``ION_REPORTS_SMTP_CA_FILE``); login when a password is set. Raises ``MailError``."""
    from shared.smtp import SmtpError, send_message

    try:
        send_message(
            message,
            recipients,
            host=str(settings.smtp_host),
            port=settings.smtp_port,
            tls="starttls",
            timeout=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
            user=settings.smtp_user or settings.mail_from,
            password=settings.smtp_password,
        )
    except SmtpError as exc:
        raise MailError(str(exc), retryable=exc.retryable) from None


def write_outbox(message: EmailMessage, report_id: str, settings: ReportsSettings) -> str | None:
    """The local fallback without ``SMTP_HOST``: the mail as an .eml file (not mailed)."""
    if not settings.outbox_dir:
        return None
    folder = Path(settings.outbox_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report_id}.eml"
    path.write_bytes(bytes(message))
    return str(path)
