"""The reports capability's HTTP function ``mail_reports``: the dashboards, the report API (what
the scheduler's weekly jobs call) and the report archive. Handlers only: the contract is in
``api_models.py``, what the handlers ask of the capability in ``service.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import flask
from pydantic import ValidationError

from functions.reports.api_models import (
    PAGES,
    AlreadyMailed,
    ArchiveQuery,
    AudiencePath,
    DashboardPath,
    DashboardQuery,
    FormatQuery,
    Mailed,
    ReportList,
    ReportQuery,
    ReportRequest,
    RunPath,
    RunQuery,
)
from functions.reports.render import MEDIA_TYPES
from functions.reports.service import audiences, catalog, dashboard_view, health_report
from functions.reports.settings import get_reports_settings
from shared.clock import utcnow
from shared.http import (
    HEALTH_ROUTE,
    Api,
    Problem,
    Reply,
    bad_cursor,
    json_response,
    scheduled_time,
    validation_errors,
)
from shared.paging import UnknownCursor

api = Api("reports")

# Accept media types → format, for clients that negotiate instead of ?format=.
ACCEPTED = {
    "text/html": "html",
    "application/json": "json",
    "text/markdown": "markdown",
    "text/plain": "text",
}


def handle(request: flask.Request) -> flask.Response:
    return api(request)


def choose_format(request: flask.Request, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    best = request.accept_mimetypes.best_match(list(ACCEPTED), default="text/html")
    return ACCEPTED.get(best or "text/html", "html")


@api.route("/", responses={302: Reply(media=(), description="To /dashboards.", headers=("Location",))})
def root(_request: flask.Request) -> flask.Response:
    return flask.redirect("/dashboards", code=302)


@api.route("/health", **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    """Firestore probed (cached a few seconds), the panel and audience definitions load, and the
    mail mode."""
    from shared.health import status_code

    report = health_report()
    return flask.Response(flask.json.dumps(report), status=status_code(report), mimetype="application/json")


@api.route(
    "/dashboards", query=FormatQuery, responses={200: Reply(media=PAGES, description="The dashboards.")}
)
def dashboards_index(request: flask.Request, query: FormatQuery) -> flask.Response:
    from functions.reports.render import render_index

    fmt = choose_format(request, query.format)
    # content_type, not mimetype: werkzeug appends a second charset to a mimetype that has one.
    return flask.Response(render_index(catalog(), fmt), content_type=MEDIA_TYPES[fmt])


@api.route(
    "/dashboards/<name>",
    params=DashboardPath,
    query=DashboardQuery,
    responses={200: Reply(media=PAGES, description="The dashboard.", headers=("Cache-Control", "X-Cache"))},
)
def dashboard(request: flask.Request, name: str, query: DashboardQuery) -> flask.Response:
    from functions.reports.render import render_view

    cat = catalog()
    if name not in cat.dashboards:
        raise Problem(404, f"No dashboard {name!r}.", allowed=list(cat.dashboards))
    fmt = choose_format(request, query.format)
    window = query.window
    region = query.region or None
    if region is not None and region not in cat.regions:
        raise Problem(422, f"region {region!r} is not one of {', '.join(cat.regions)}.", allowed=cat.regions)
    definition = cat.dashboards[name]
    view, cache_state = dashboard_view(name, definition, window=window, region=region, now=utcnow())
    body = render_view(view, fmt, cat, query.tz)
    response = flask.Response(body, content_type=MEDIA_TYPES[fmt])
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


def _report_request(body: ReportRequest, query: ReportQuery) -> ReportRequest:
    """The body's parameters, each overridden by the query's."""
    merged = {**body.model_dump(exclude_unset=True), **query.model_dump(exclude_none=True)}
    try:
        return ReportRequest.model_validate(merged)
    except ValidationError as exc:  # both were valid alone: cannot happen, answered all the same
        raise Problem(422, "Report parameters are not valid.", errors=validation_errors(exc)) from None


def _reference_time(request: flask.Request, now: datetime) -> datetime:
    """When the scheduler meant the job to run (its retries keep naming the same period), else
    ``now``: a later clock reading would put the day so far's end after ``now``, "not over yet"."""
    return scheduled_time(request) or now


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
            reference=_reference_time(request, now),
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
    """The archive: reports mailed, newest first, a page at a time."""
    from functions.reports import archive

    known = list(audiences().audiences)
    if query.audience is not None and query.audience not in known:  # a typo listed nothing, a 200
        message = f"no audience {query.audience!r}"
        raise Problem(
            422,
            f"No audience {query.audience!r}.",
            errors=[{"field": "audience", "message": message}],
            allowed=known,
        )
    try:
        rows = archive.list_runs(query.limit, query.audience, query.after)
    except UnknownCursor as exc:
        raise bad_cursor(exc) from None
    for row in rows:
        row["url"] = f"/v1/reports/{row.get('id')}"
    # A full page may be followed by an empty one: a page reads no run past its own.
    return {"reports": rows, "next": rows[-1]["id"] if len(rows) == query.limit else None}


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
