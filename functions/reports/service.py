"""What the handlers of ``main.py`` ask of the reports capability, without HTTP: the configured
definitions (dashboards, audiences), a dashboard's view over Firestore's sources (shared through
the view cache), and the health report."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from functions.reports.panels import Catalog, Dashboard, load_catalog
from functions.reports.settings import get_reports_settings
from shared.deployment import deployed
from shared.logging import get_logger

if TYPE_CHECKING:
    from functions.reports.audiences import Audiences
    from functions.reports.view_cache import ViewCache
    from functions.reports.views import DashboardView

log = get_logger("reports")


def catalog() -> Catalog:
    return load_catalog(get_reports_settings().dashboards_file)


def audiences() -> Audiences:
    from functions.reports.audiences import configured_audiences

    return configured_audiences(get_reports_settings(), deployed=deployed())


@lru_cache(maxsize=1)
def view_cache() -> ViewCache:
    """This instance's view cache, sharing built views with the others through Firestore."""
    from functions.reports.view_cache import FirestoreSharedViews, ViewCache

    return ViewCache(FirestoreSharedViews())


def dashboard_view(
    name: str, definition: Dashboard, *, window: str, region: str | None, now: datetime
) -> tuple[DashboardView, str]:
    """The view of dashboard ``name`` and whether the view cache had it (``X-Cache``): built over
    Firestore's sources, once per refresh slot across instances when dashboards are cached."""
    from functions.reports.dashboard_build import build_dashboard
    from functions.reports.documents import FirestoreDocumentSource
    from functions.reports.incident_records import FirestoreIncidentSource
    from functions.reports.source import FirestoreAlertSource, StoreMetricSource

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
        return view_cache().view(
            name=name,
            window=window,
            region=region,
            refresh_seconds=definition.refresh_seconds,
            now=now,
            build=build,
        )
    return build(), "miss"


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import HealthCheck, firestore_probe

    return HealthCheck("reports", lambda: [firestore_probe()])


def health_report() -> dict[str, Any]:
    """Firestore probed (cached a few seconds), the panel and audience definitions load, and the
    mail mode; ``degraded`` when a check fails."""
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
    return report
