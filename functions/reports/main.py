"""The reports capability's HTTP function ``mail_reports``: the dashboards, the report API (what
the scheduler's weekly jobs call) and the report archive."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, ValidationError

from functions.reports.cache import dashboard_cache
from functions.reports.panels import WINDOWS, Catalog, load_catalog
from functions.reports.render import FORMATS, MEDIA_TYPES
from functions.reports.settings import deployed, get_reports_settings
from shared.clock import utcnow
from shared.http import Api, Problem, json_response, read_json, scheduled_time, validation_errors
from shared.logging import get_logger

if TYPE_CHECKING:
    from functions.reports.audiences import Audiences

api = Api("reports")
log = get_logger("reports")

# Accept media types → format, for clients that negotiate instead of ?format=.
ACCEPTED = {
    "text/html": "html",
    "application/json": "json",
    "text/markdown": "markdown",
    "text/plain": "text",
}


def handle(request: flask.Request) -> flask.Response:
    return api(request)


def catalog() -> Catalog:
    return load_catalog(get_reports_settings().dashboards_file)


def choose_format(request: flask.Request) -> str:
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise Problem(422, f"format {fmt!r} is not one of {', '.join(FORMATS)}.", allowed=list(FORMATS))
        return fmt
    best = request.accept_mimetypes.best_match(list(ACCEPTED), default="text/html")
    return ACCEPTED.get(best or "text/html", "html")


@api.route("/")
def root(_request: flask.Request) -> flask.Response:
    return flask.redirect("/dashboards", code=302)


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import HealthCheck, firestore_probe

    return HealthCheck("reports", lambda: [firestore_probe()])


@api.route("/health")
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


@api.route("/dashboards")
def dashboards_index(request: flask.Request) -> flask.Response:
    from functions.reports.render import render_index

    fmt = choose_format(request)
    return flask.Response(render_index(catalog(), fmt), mimetype=MEDIA_TYPES[fmt])


@api.route("/dashboards/<name>")
def dashboard(request: flask.Request, name: str) -> flask.Response:
    from functions.reports.build import build_dashboard
    from functions.reports.render import render_view
    from functions.reports.source import FirestoreAlertSource, StoreMetricSource

    cat = catalog()
    if name not in cat.dashboards:
        raise Problem(404, f"No dashboard {name!r}.", allowed=list(cat.dashboards))
    fmt = choose_format(request)
    window = request.args.get("window", "1h")
    if window not in WINDOWS:
        raise Problem(422, f"window {window!r} is not one of {', '.join(WINDOWS)}.", allowed=list(WINDOWS))
    region = request.args.get("region") or None
    if region is not None and region not in cat.regions:
        raise Problem(422, f"region {region!r} is not one of {', '.join(cat.regions)}.", allowed=cat.regions)
    definition = cat.dashboards[name]
    now = utcnow()
    key = (name, window, region or "", fmt)
    settings = get_reports_settings()
    body = dashboard_cache.get(key, now.timestamp()) if settings.cache_dashboards else None
    cache_state = "hit"
    if body is None:
        cache_state = "miss"
        view = build_dashboard(
            definition, StoreMetricSource(), FirestoreAlertSource(), window=window, region=region, now=now
        )
        body = render_view(view, fmt, cat)
        if settings.cache_dashboards:
            dashboard_cache.put(key, body, now.timestamp() + definition.refresh_seconds)
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

    period: Literal["week", "month"] = "week"
    week: str | None = None
    month: str | None = None
    time_zone: str | None = None
    resend: bool = False


def audiences() -> Audiences:
    from functions.reports.audiences import configured_audiences

    return configured_audiences(get_reports_settings(), deployed=deployed())


def _report_request(request: flask.Request) -> ReportRequest:
    body: dict[str, Any] = {}
    if request.content_length or request.data:
        body = read_json(request, ReportRequest).model_dump(exclude_unset=True)
    for key in ("period", "week", "month", "time_zone", "resend"):
        if key in request.args:
            body[key] = request.args[key]
    try:
        return ReportRequest.model_validate(body)
    except ValidationError as exc:
        raise Problem(422, "Report parameters are not valid.", errors=validation_errors(exc)) from None


def _reference_time(request: flask.Request) -> datetime:
    """When the scheduler meant the job to run (its retries keep naming the same period)."""
    return scheduled_time(request) or utcnow()


@api.route("/v1/reports/<audience>", methods=["POST"])
def mail_report(request: flask.Request, audience: str) -> flask.Response:
    from functions.reports import mailing
    from functions.reports.period import PeriodError

    settings = get_reports_settings()
    known = audiences()
    spec = known.audiences.get(audience)
    if spec is None:
        raise Problem(404, f"No audience {audience!r}.", allowed=list(known.audiences))
    params = _report_request(request)
    now = utcnow()
    try:
        chosen = mailing.choose_period(
            kind=params.period,
            week=params.week,
            month=params.month,
            zone_name=params.time_zone or spec.time_zone or settings.time_zone,
            reference=_reference_time(request),
            now=now,
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


@api.route("/v1/reports")
def list_reports(request: flask.Request) -> dict[str, Any]:
    from functions.reports import archive

    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        raise Problem(422, "limit must be an integer from 1 to 500.") from None
    if not 1 <= limit <= 500:
        raise Problem(422, "limit must be an integer from 1 to 500.")
    audience = request.args.get("audience")
    rows = archive.list_runs(limit, audience)
    for row in rows:
        row["url"] = f"/v1/reports/{row.get('id')}"
    return {"reports": rows}


@api.route("/v1/reports/<run_id>")
def get_report(request: flask.Request, run_id: str) -> flask.Response:
    from functions.reports import archive

    doc = archive.get_run(run_id)
    if doc is None or "html" not in doc:
        raise Problem(404, f"No archived report {run_id!r}; GET /v1/reports lists them.")
    if request.args.get("format") == "json":
        summary = {k: doc.get(k) for k in [*archive.SUMMARY_FIELDS, "message_id", "text"]}
        return json_response(summary)
    if request.args.get("format") == "text":
        return flask.Response(doc.get("text", ""), mimetype="text/plain")
    response = flask.Response(archive.standalone_html(doc), mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response
