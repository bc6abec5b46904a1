"""The reports capability's HTTP function ``mail_reports``: the dashboards, the report API (what
the scheduler's weekly jobs call) and the report archive."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.reports.panels import WINDOWS, Catalog, load_catalog
from functions.reports.render import FORMATS, MEDIA_TYPES
from functions.reports.settings import deployed, get_reports_settings
from shared.clock import utcnow
from shared.http import HEALTH_ROUTE, Api, Problem, Reply, json_response, scheduled_time, validation_errors
from shared.ids import DocumentId
from shared.logging import get_logger

if TYPE_CHECKING:
    from functions.reports.audiences import Audiences
    from functions.reports.view_cache import ViewCache
    from functions.reports.views import DashboardView

api = Api("reports")
log = get_logger("reports")

# Accept media types → format, for clients that negotiate instead of ?format=.
ACCEPTED = {
    "text/html": "html",
    "application/json": "json",
    "text/markdown": "markdown",
    "text/plain": "text",
}


Format = Literal[FORMATS]  # type: ignore[valid-type]
Window = Literal[tuple(WINDOWS)]  # type: ignore[valid-type]
# Audience names and dashboard names are keys of their definitions; report runs are Firestore
# documents ``<audience>-<period>``: each checked as a document id before anything is looked up.
AudienceName = DocumentId(max_length=64, description="an audience name, e.g. engineering")
RunId = DocumentId(
    max_length=128, description="a report run id, <audience>-<period>, e.g. engineering-2026-W46"
)
PAGES = ("text/html", "application/json", "text/markdown", "text/plain")


class FormatQuery(BaseModel):
    format: Format | None = Field(default=None, description="the format (else chosen by Accept; html)")


class DashboardPath(BaseModel):
    name: DocumentId(max_length=64, description="a dashboard name, e.g. overview") = Field(  # type: ignore[valid-type]
        examples=["overview", "reliability"]
    )


class DashboardQuery(FormatQuery):
    window: Window = Field(default="1h", description="the time window charted")
    region: str | None = Field(default=None, max_length=64, description="one region (default: all)")
    tz: str = Field(
        default="UTC",
        max_length=64,
        pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$",
        description="the reader's IANA time zone for the charts' times (default UTC), e.g. America/New_York",
    )

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (like America/New_York)") from None
        return value


class AudiencePath(BaseModel):
    # The cheapest report to build, sent by the contract test (then its archived copy is read).
    name: AudienceName = Field(examples=["support"])  # type: ignore[valid-type]


class RunPath(BaseModel):
    name: RunId  # type: ignore[valid-type]


class ArchiveQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500, description="reports listed, newest first, 1 to 500")
    audience: AudienceName | None = Field(default=None, description="only this audience's reports")  # type: ignore[valid-type]


class RunQuery(BaseModel):
    format: Literal["html", "json", "text"] = Field(default="html", description="the archived report as")


class ReportSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    url: str


class Mailed(BaseModel):
    id: str
    mailed: bool = Field(description="true when sent over SMTP (locally: written to the outbox)")
    delivery: str
    recipients: list[str]
    message_id: str | None
    period: dict[str, Any]
    status: str
    empty: bool
    size_bytes: int
    html_bytes: int
    images: int
    resend: int
    recorded: bool
    url: str


class AlreadyMailed(BaseModel):
    id: str
    mailed: Literal[False]
    reason: str
    url: str


class ReportList(BaseModel):
    reports: list[ReportSummary]


def handle(request: flask.Request) -> flask.Response:
    return api(request)


def catalog() -> Catalog:
    return load_catalog(get_reports_settings().dashboards_file)


def choose_format(request: flask.Request, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    best = request.accept_mimetypes.best_match(list(ACCEPTED), default="text/html")
    return ACCEPTED.get(best or "text/html", "html")


@api.route("/", responses={302: Reply(media=(), description="To /dashboards.", headers=("Location",))})
def root(_request: flask.Request) -> flask.Response:
    return flask.redirect("/dashboards", code=302)


@lru_cache(maxsize=1)
def view_cache() -> ViewCache:
    """This instance's view cache, sharing built views with the others through Firestore."""
    from functions.reports.view_cache import FirestoreSharedViews, ViewCache

    return ViewCache(FirestoreSharedViews())


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import HealthCheck, firestore_probe

    return HealthCheck("reports", lambda: [firestore_probe()])


@api.route("/health", **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    """Firestore probed (cached a few seconds), the panel and audience definitions load, and the
    mail mode."""
    from shared.health import status_code

    settings = get_reports_settings()
    report = dict(_health().report())
    checks = dict(report["checks"])
    try:
        checks["definitions"] = {
            "ok": True,
            "dashboards": len(catalog().dashboards),
            "audiences": len(audiences().audiences),
        }
    except Exception as exc:
        log.exception("report definitions do not load")
        checks["definitions"] = {"ok": False, "error": type(exc).__name__}
    checks["mail"] = {
        "ok": True,
        "mode": "smtp" if settings.mail_configured else "outbox (local fallback: reports are not mailed)",
    }
    report["checks"] = checks
    if not all(c["ok"] for c in checks.values()):
        report["status"] = "degraded"
    return flask.Response(flask.json.dumps(report), status=status_code(report), mimetype="application/json")


@api.route(
    "/dashboards", query=FormatQuery, responses={200: Reply(media=PAGES, description="The dashboards.")}
)
def dashboards_index(request: flask.Request, query: FormatQuery) -> flask.Response:
    from functions.reports.render import render_index

    fmt = choose_format(request, query.format)
    return flask.Response(render_index(catalog(), fmt), mimetype=MEDIA_TYPES[fmt])


@api.route(
    "/dashboards/<name>",
    params=DashboardPath,
    query=DashboardQuery,
    responses={200: Reply(media=PAGES, description="The dashboard.", headers=("Cache-Control", "X-Cache"))},
)
def dashboard(request: flask.Request, name: str, query: DashboardQuery) -> flask.Response:
    from functions.reports.build import build_dashboard
    from functions.reports.documents import FirestoreDocumentSource
    from functions.reports.incident_records import FirestoreIncidentSource
    from functions.reports.render import render_view
    from functions.reports.source import FirestoreAlertSource, StoreMetricSource

    cat = catalog()
    if name not in cat.dashboards:
        raise Problem(404, f"No dashboard {name!r}.", allowed=list(cat.dashboards))
    fmt = choose_format(request, query.format)
    window = query.window
    region = query.region or None
    if region is not None and region not in cat.regions:
        raise Problem(422, f"region {region!r} is not one of {', '.join(cat.regions)}.", allowed=cat.regions)
    definition = cat.dashboards[name]
    now = utcnow()

    def build() -> DashboardView:
        return build_dashboard(
            definition,
            StoreMetricSource(),
            FirestoreAlertSource(),
            window=window,
            region=region,
            now=now,
            incidents=FirestoreIncidentSource(),
            documents=FirestoreDocumentSource() if any(p.figure for p in definition.panels) else None,
        )

    if get_reports_settings().cache_dashboards:
        view, cache_state = view_cache().view(
            name=name,
            window=window,
            region=region,
            refresh_seconds=definition.refresh_seconds,
            now=now,
            build=build,
        )
    else:
        view, cache_state = build(), "miss"
    body = render_view(view, fmt, cat, query.tz)
    response = flask.Response(body, mimetype=MEDIA_TYPES[fmt])
    response.headers["Cache-Control"] = f"max-age={definition.refresh_seconds}"
    response.headers["Vary"] = "Accept"
    response.headers["X-Cache"] = cache_state
    if fmt == "html":
        # Self-contained: nothing may load from elsewhere (styles inline, no script).
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"
        )
    return response


# -- reports ---------------------------------------------------------------------------------------


class ReportRequest(BaseModel):
    """Optional JSON body (the scheduler's jobs send one); query parameters say the same."""

    model_config = ConfigDict(extra="forbid")

    period: Literal["week", "month", "day"] | None = Field(
        default=None, description="week, month or day (the day so far); default: the audience's (week)"
    )
    week: str | None = Field(default=None, max_length=16, description="an ISO week, e.g. 2026-W46")
    month: str | None = Field(default=None, max_length=16, description="a month, e.g. 2026-11")
    day: str | None = Field(default=None, max_length=16, description="a local day, e.g. 2026-11-18")
    time_zone: str | None = Field(default=None, max_length=64, description="an IANA time zone")
    resend: bool = False
    partial: bool = Field(default=False, description="the current week so far (labelled partial)")


class ReportQuery(BaseModel):
    """The same parameters in the query string (each overrides the body's)."""

    period: Literal["week", "month", "day"] | None = None
    week: str | None = Field(default=None, max_length=16, description="an ISO week, e.g. 2026-W46")
    month: str | None = Field(default=None, max_length=16, description="a month, e.g. 2026-11")
    day: str | None = Field(default=None, max_length=16, description="a local day, e.g. 2026-11-18")
    time_zone: str | None = Field(default=None, max_length=64, description="an IANA time zone")
    resend: bool | None = Field(default=None, description="mail again a report already mailed")
    partial: bool | None = Field(default=None, description="the current week so far (labelled partial)")


def audiences() -> Audiences:
    from functions.reports.audiences import configured_audiences

    return configured_audiences(get_reports_settings(), deployed=deployed())


def _report_request(body: ReportRequest, query: ReportQuery) -> ReportRequest:
    """The body's parameters, each overridden by the query's."""
    merged = {**body.model_dump(exclude_unset=True), **query.model_dump(exclude_none=True)}
    try:
        return ReportRequest.model_validate(merged)
    except ValidationError as exc:  # both were valid alone: cannot happen, answered all the same
        raise Problem(422, "Report parameters are not valid.", errors=validation_errors(exc)) from None


def _reference_time(request: flask.Request) -> datetime:
    """When the scheduler meant the job to run (its retries keep naming the same period)."""
    return scheduled_time(request) or utcnow()


@api.route(
    "/v1/reports/<name>",
    methods=["POST"],
    params=AudiencePath,
    query=ReportQuery,
    body=ReportRequest,
    body_required=False,
    responses={
        201: Reply(Mailed, description="Mailed (or written to the outbox) and archived."),
        200: Reply(AlreadyMailed, description="Already mailed for that period; ?resend=true mails it again."),
    },
    problems=(400, 409, 502),
    links={status: {"get_report": {"name": "$response.body#/id"}} for status in (200, 201)},
)
def mail_report(request: flask.Request, name: str, query: ReportQuery, body: ReportRequest) -> flask.Response:
    """Build and mail the report of audience ``name`` for a period, once per period."""
    from functions.reports import mailing
    from functions.reports.period import PeriodError

    settings = get_reports_settings()
    known = audiences()
    spec = known.audiences.get(name)
    if spec is None:
        raise Problem(404, f"No audience {name!r}.", allowed=list(known.audiences))
    params = _report_request(body, query)
    now = utcnow()
    try:
        chosen = mailing.choose_period(
            kind=params.period or spec.period,
            week=params.week,
            month=params.month,
            day=params.day,
            zone_name=params.time_zone or spec.time_zone or settings.time_zone,
            reference=_reference_time(request),
            now=now,
            partial=params.partial,
        )
        outcome = mailing.mail_report(spec, chosen, catalog(), settings, resend=params.resend, now=now)
    except (PeriodError, mailing.PeriodNotOver, mailing.NoRecipients) as exc:
        raise Problem(422, str(exc)) from None
    except mailing.ClaimedElsewhere as exc:
        raise Problem(409, str(exc)) from None
    except mailing.NotMailed as exc:
        raise Problem(502, str(exc), retryable=exc.retryable) from None
    if isinstance(outcome, mailing.AlreadyMailed):
        sent_at = outcome.sent_at
        return json_response(
            {
                "id": outcome.run_id,
                "mailed": False,
                "reason": f"already mailed{' at ' + sent_at.isoformat() if sent_at else ''}; "
                "?resend=true mails it again",
                "url": f"/v1/reports/{outcome.run_id}",
            }
        )
    return json_response(
        {
            "id": outcome.run_id,
            "mailed": outcome.delivery == "smtp",
            "delivery": outcome.delivery,
            "recipients": outcome.recipients,
            "message_id": outcome.message_id,
            "period": outcome.period.model_dump(mode="json"),
            "status": outcome.report.status,
            "empty": outcome.report.empty,
            "size_bytes": outcome.rendered.size_bytes,
            "html_bytes": len(outcome.rendered.html.encode()),
            "images": len(outcome.rendered.images),
            "resend": outcome.resend,
            "recorded": outcome.recorded,
            "url": f"/v1/reports/{outcome.run_id}",
        },
        status=201,
    )


@api.route("/v1/reports", query=ArchiveQuery, response=ReportList)
def list_reports(_request: flask.Request, query: ArchiveQuery) -> dict[str, Any]:
    """The archive: reports mailed, newest first."""
    from functions.reports import archive

    rows = archive.list_runs(query.limit, query.audience)
    for row in rows:
        row["url"] = f"/v1/reports/{row.get('id')}"
    return {"reports": rows}


@api.route(
    "/v1/reports/<name>",
    params=RunPath,
    query=RunQuery,
    responses={
        200: Reply(media=("text/html", "application/json", "text/plain"), description="The archived report.")
    },
)
def get_report(_request: flask.Request, name: str, query: RunQuery) -> flask.Response:
    """An archived report ``name`` (``<audience>-<period>``) as mailed."""
    from functions.reports import archive

    doc = archive.get_run(name)
    if doc is None or "html" not in doc:
        raise Problem(404, f"No archived report {name!r}; GET /v1/reports lists them.")
    if query.format == "json":
        summary = {k: doc.get(k) for k in [*archive.SUMMARY_FIELDS, "message_id", "text"]}
        return json_response(summary)
    if query.format == "text":
        return flask.Response(doc.get("text", ""), mimetype="text/plain")
    response = flask.Response(archive.standalone_html(doc), mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response
