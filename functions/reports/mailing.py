"""Mailing one audience's report for one period, the use case behind ``POST /v1/reports/<audience>``:
the period chosen, the run claimed once in the archive, the report built, rendered and mailed (or
written to the outbox when SMTP is not configured: the labelled local fallback), and the outcome
recorded. Knows nothing of HTTP: ``main.py`` turns its errors into answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from functions.reports.audiences import AudienceSpec
from functions.reports.mail import MailError, RenderedReport
from functions.reports.panels import Catalog
from functions.reports.period import Period
from functions.reports.report import Report
from functions.reports.settings import ReportsSettings
from shared.clock import utcnow
from shared.logging import get_logger

log = get_logger("reports")


class PeriodNotOver(ValueError):
    """The period asked for has not ended yet."""


class NoRecipients(ValueError):
    """SMTP is configured but the audience has nobody to mail."""


class ClaimedElsewhere(RuntimeError):
    """Another instance is building and mailing this run right now."""


class NotMailed(RuntimeError):
    """The mail server refused or failed; the run is recorded as failed."""

    def __init__(self, run_id: str, error: MailError) -> None:
        super().__init__(f"Report {run_id} was not mailed: {error}")
        self.retryable = error.retryable


@dataclass
class AlreadyMailed:
    run_id: str
    sent_at: datetime | None


@dataclass
class Mailed:
    run_id: str
    delivery: Literal["smtp", "outbox"]
    recipients: list[str]
    message_id: str
    period: Period
    report: Report
    rendered: RenderedReport
    resend: int
    recorded: bool


def choose_period(
    *,
    kind: str,
    week: str | None,
    month: str | None,
    zone_name: str,
    reference: datetime,
    now: datetime,
    day: str | None = None,
    partial: bool = False,
) -> Period:
    """The named week or month, else the last full one before ``reference`` (when the scheduler
    meant the job to run, so its retries name the same period); with ``partial`` the current week
    up to ``now``. Raises ``period.PeriodError`` for a malformed name, ``PeriodNotOver`` for a
    period still running at ``now``."""
    from functions.reports import period

    if partial:
        if week or month or day or kind in ("month", "day"):
            raise period.PeriodError(
                "partial is the current week so far: it takes no week, month, day or period"
            )
        return period.week_so_far(now, zone_name)
    if day or kind == "day":
        # A day runs to when the job was meant to run (its retries cover the same hours), or whole.
        chosen = (
            period.day(day, zone_name, until=reference) if day else period.day_until(reference, zone_name)
        )
        if chosen.end <= chosen.start:
            raise PeriodNotOver(f"day {chosen.label} ({zone_name}) has not started yet.")
    elif week:
        chosen = period.week(week, zone_name)
    elif month:
        chosen = period.month(month, zone_name)
    elif kind == "month":
        chosen = period.last_full_month(reference, zone_name)
    else:
        chosen = period.last_full_week(reference, zone_name)
    if chosen.end > now:
        raise PeriodNotOver(
            f"{chosen.kind} {chosen.label} ({zone_name}) is not over yet; it ends {chosen.end.isoformat()}."
        )
    return chosen


def mail_report(
    spec: AudienceSpec,
    chosen: Period,
    catalog: Catalog,
    settings: ReportsSettings,
    *,
    resend: bool,
    now: datetime,
) -> Mailed | AlreadyMailed:
    from functions.reports import archive
    from functions.reports.documents import FirestoreDocumentSource
    from functions.reports.incident_records import FirestoreIncidentSource
    from functions.reports.mail import build_message, render_report, send, write_outbox
    from functions.reports.report import build_report, report_id
    from functions.reports.source import FirestoreAlertSource, StoreMetricSource

    recipients = spec.mail_to()
    if settings.mail_configured and not recipients:
        raise NoRecipients(
            f"No recipients for {spec.name}: set ION_REPORTS_TO_{spec.name.upper()} "
            "or list them in the audiences file."
        )
    run_id = report_id(spec.name, chosen)
    claimed = archive.claim(
        run_id,
        now=now,
        lease=timedelta(seconds=settings.claim_lease_seconds),
        resend=resend,
        meta={"id": run_id, "audience": spec.name, "period": chosen.model_dump(mode="json")},
    )
    if claimed.outcome == "sent":
        return AlreadyMailed(run_id, (claimed.existing or {}).get("sent_at"))
    if claimed.outcome == "busy":
        raise ClaimedElsewhere(f"Report {run_id} is being built and mailed by another instance; retry later.")

    from shared.metrics.build_reads import rollup_reads

    with rollup_reads():  # the sections' queries of one metric read its rollups once
        report = build_report(
            spec,
            chosen,
            catalog,
            StoreMetricSource(),
            FirestoreAlertSource(),
            documents=FirestoreDocumentSource(),
            now=now,
            incidents=FirestoreIncidentSource(),
        )
    rendered = render_report(report, settings)
    message = build_message(
        rendered,
        report_id=run_id,
        sender=settings.mail_from,
        recipients=recipients,
        sent_at=now,
        resend=claimed.resend,
    )
    archived: dict[str, Any] = {
        "subject": rendered.subject,
        "status": report.status,
        "empty": report.empty,
        "html": rendered.html,
        "text": rendered.text,
        "images": rendered.images,
        "size_bytes": rendered.size_bytes,
        "recipients": recipients,
        "message_id": message["Message-ID"],
    }
    delivery: Literal["smtp", "outbox"]
    if settings.mail_configured:
        try:
            send(message, recipients, settings)
        except MailError as exc:
            archive.finish(run_id, claimed.token, {**archived, "state": "failed", "error": str(exc)})
            log.error(
                "report not mailed", extra={"report": run_id, "error": str(exc), "retryable": exc.retryable}
            )
            raise NotMailed(run_id, exc) from None
        delivery = "smtp"
    else:
        write_outbox(message, run_id, settings)
        delivery = "outbox"
    finished = archive.finish(
        run_id, claimed.token, {**archived, "state": "sent", "delivery": delivery, "sent_at": utcnow()}
    )
    log.info(
        "report mailed"
        if delivery == "smtp"
        else "report written to the outbox (SMTP_HOST unset: not mailed)",
        extra={
            "report": run_id,
            "delivery": delivery,
            "recipients": len(recipients),
            "bytes": rendered.size_bytes,
        },
    )
    return Mailed(
        run_id=run_id,
        delivery=delivery,
        recipients=recipients,
        message_id=message["Message-ID"],
        period=chosen,
        report=report,
        rendered=rendered,
        resend=claimed.resend,
        recorded=finished,
    )
