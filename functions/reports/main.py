"""The reports capability's HTTP function ``mail_reports``: the dashboards, the report API (what
the scheduler's weekly jobs call) and the report archive."""

from __future__ import annotations

import threading
from typing import Any

import flask

from functions.reports.panels import WINDOWS, Catalog, load_catalog
from functions.reports.render import FORMATS, MEDIA_TYPES
from functions.reports.settings import get_reports_settings
from shared.clock import utcnow
from shared.http import Api, Problem
from shared.logging import get_logger

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


class _DashboardCache:
    """Rendered dashboards per (name, window, region, format), each kept for its dashboard's
    refresh interval: a page reloaded by its meta refresh, or by many people, reads once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], tuple[float, str]] = {}

    def get(self, key: tuple[str, ...], now: float) -> str | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] <= now:
                return None
            return hit[1]

    def put(self, key: tuple[str, ...], body: str, expires: float) -> None:
        with self._lock:
            if len(self._entries) > 500:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > expires - 3600}
            self._entries[key] = (expires, body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


dashboard_cache = _DashboardCache()


@api.route("/")
def root(_request: flask.Request) -> flask.Response:
    return flask.redirect("/dashboards", code=302)


@api.route("/health")
def health(_request: flask.Request) -> flask.Response:
    """Checks what serving needs: the panel definitions load and Firestore answers a read."""
    from shared.firestore import get_firestore

    settings = get_reports_settings()
    checks: dict[str, Any] = {}
    try:
        checks["dashboards"] = {"ok": True, "count": len(catalog().dashboards)}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["dashboards"] = {"ok": False, "error": str(exc)}
    try:
        list(get_firestore().collection("report_runs").limit(1).stream(timeout=5))
        checks["firestore"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        checks["firestore"] = {"ok": False, "error": type(exc).__name__}
    checks["mail"] = {
        "ok": True,
        "mode": "smtp" if settings.mail_configured else "outbox (local fallback: reports are not mailed)",
    }
    healthy = all(c["ok"] for c in checks.values())
    return flask.Response(
        flask.json.dumps({"status": "ok" if healthy else "unhealthy", "checks": checks}),
        status=200 if healthy else 503,
        mimetype="application/json",
    )


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
