"""HTTP and Pub/Sub handlers of the cost capability (entry points in /main.py).

HTTP (``snapshot_cost``; locally every path of the capability's port, 8086):

- ``POST /`` or ``POST /v1/cost/snapshot`` — the daily run (Cloud Scheduler). Body optional:
  ``{"date": "YYYY-MM-DD"}`` (default yesterday in the billing account's zone, Pacific). Answers
  the stored snapshot.
- ``GET /v1/cost?date=YYYY-MM-DD&days=N`` — the snapshot of ``date`` (default the latest) and the
  daily series of the ``N`` days up to it (default 30, at most 400) from the stored days.
- ``GET /v1/cost/forecast`` — the latest month-end forecast with its band, budget use and savings.
- ``GET /v1/cost/anomalies?days=N`` — anomalies announced over the last ``N`` days (default 35).
- ``GET /health`` — checks the store answers and says which billing source is configured.

Pub/Sub (``snapshot_cost_budget``, push subscription on ``budget-notifications``): GCP Budget
notifications, each handled once; a malformed one is dropped with a log line saying why.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.cost.settings import get_cost_settings
from shared.clock import CalendarDate, utcnow
from shared.http import HEALTH_ROUTE, Api, Problem
from shared.logging import get_logger
from shared.messages import AlertTransition

api = Api("cost")
log = get_logger("cost")
MAX_DAYS = 400


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "date" is a 422, not yesterday's run

    date: CalendarDate | None = Field(
        default=None, description="the day to snapshot (default yesterday in ION_COST_TIME_ZONE, Pacific)"
    )


class _Query(BaseModel):
    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value


class CostQuery(_Query):
    date: CalendarDate | None = Field(
        default=None, description="the snapshot of this day (default the latest)"
    )
    days: int | None = Field(
        default=None, ge=1, le=MAX_DAYS, description="days of series, 1 to 400 (default 30)"
    )


class ForecastQuery(_Query):
    date: CalendarDate | None = Field(
        default=None, description="as of this day's snapshot (default the latest)"
    )


class AnomaliesQuery(_Query):
    days: int = Field(default=35, ge=1, le=MAX_DAYS, description="days back, 1 to 400")


class CostAnswer(BaseModel):
    snapshot: dict[str, Any]
    series: list[dict[str, Any]]
    days: int


class ForecastAnswer(BaseModel):
    as_of: str
    currency: str
    month_to_date: Any
    forecast_month_end: Any
    budget: Any
    savings: Any
    today: Any = None


class AnomaliesAnswer(BaseModel):
    since: str
    anomalies: list[dict[str, Any]]
    crossings: list[dict[str, Any]]


_SNAPSHOT = {"body": RunBody, "body_required": False, "problems": (502, 503)}


def _publish(transition: AlertTransition) -> None:
    from shared.notices import publish_notice

    publish_notice(transition)


@lru_cache(maxsize=1)
def _store() -> Any:
    from functions.cost.store import FirestoreCostStore

    return FirestoreCostStore(keep_days=get_cost_settings().keep_days)


def reset() -> None:
    """Forget cached clients and settings (tests change the environment between cases)."""
    _store.cache_clear()
    get_cost_settings.cache_clear()


def _service() -> Any:
    from functions.cost.service import CostService
    from functions.cost.sources import billing_source
    from functions.cost.usage import StoreMetrics, load_prices

    settings = get_cost_settings()
    source = billing_source(settings)
    if source is None:
        raise Problem(
            503,
            "No billing source is configured: set ION_COST_BILLING_TABLE (the Cloud Billing export table) "
            "or, locally, ION_COST_BILLING_FILE (a JSON-lines export).",
        )
    return CostService(
        settings=settings,
        source=source,
        store=_store(),
        publish=_publish,
        now=utcnow,
        metrics=StoreMetrics(),
        prices=load_prices(settings.prices_file),
        opportunities=_opportunities(settings),
    )


def _opportunities(settings: Any) -> Any:
    if not settings.recommender_enabled():
        return None
    from functions.cost import recommendations
    from shared.settings import get_settings

    names = recommendations.parents(
        settings.recommender_project or get_settings().project,
        [loc.strip() for loc in settings.recommender_locations.split(",") if loc.strip()],
        settings.billing_account,
    )
    client = recommendations.recommender_client(settings.recommender_endpoint)
    return lambda: recommendations.list_opportunities(client, names)


def handle(request: flask.Request) -> flask.Response:
    return api(request)


@api.route("/", methods=["POST"], **_SNAPSHOT)
@api.route("/v1/cost/snapshot", methods=["POST"], **_SNAPSHOT)
def run_snapshot(_request: flask.Request, body: RunBody) -> dict[str, Any]:
    """The daily snapshot of a past day (default yesterday), stored and answered."""
    from functions.cost.service import CurrencyMismatch
    from functions.cost.sources import NoProjects

    # Days are the billing account's (Pacific): "yesterday" is yesterday there.
    today = utcnow().astimezone(get_cost_settings().zone).date()
    if body.date is not None and body.date >= today:
        raise Problem(
            422,
            f"date {body.date} is not a past day; snapshots are of whole days up to yesterday "
            f"({today - timedelta(days=1)}, {get_cost_settings().time_zone}).",
        )
    keep = get_cost_settings().keep_days
    if body.date is not None and body.date < today - timedelta(days=keep):
        # Found by the contract test: a date centuries back asked the metric store for times it
        # refuses (a 500); a snapshot older than what is kept would expire as it is written.
        raise Problem(
            422,
            f"date {body.date} is more than {keep} days ago; snapshots are kept {keep} days "
            "(ION_COST_KEEP_DAYS).",
        )
    service = _service()
    try:
        # A line that does not parse is set aside and reported in the snapshot, never a 502.
        return service.run(body.date)
    except NoProjects as exc:
        raise Problem(503, str(exc)) from None
    except CurrencyMismatch as exc:
        raise Problem(502, str(exc)) from None


@api.route("/v1/cost", query=CostQuery, response=CostAnswer, problems=(404,))
def get_cost(_request: flask.Request, query: CostQuery) -> dict[str, Any]:
    """A snapshot and the daily series of the days up to it."""
    from functions.cost.ledger import money
    from functions.cost.store import day_from_doc

    as_of = query.date
    days = query.days or 30
    store = _store()
    snapshot = store.snapshot(as_of)
    if snapshot is None:
        what = f"for {as_of}" if as_of else "yet"
        raise Problem(404, f"No cost snapshot {what}; POST /v1/cost/snapshot makes one.")
    last = date.fromisoformat(snapshot["as_of"])
    stored = store.days(last - timedelta(days=days - 1), last)
    series = []
    for doc in stored.values():
        cost = day_from_doc(doc)
        series.append(
            {
                "date": doc["date"],
                "total": money(cost.total),
                "credits": money(cost.credits),
                "by_service": {k: money(v) for k, v in sorted(cost.by_service.items())},
                "revision": doc.get("revision"),
                "settled": doc.get("settled"),
            }
        )
    return {"snapshot": snapshot, "series": series, "days": days}


@api.route("/v1/cost/forecast", query=ForecastQuery, response=ForecastAnswer, problems=(404,))
def get_forecast(_request: flask.Request, query: ForecastQuery) -> dict[str, Any]:
    """The month-end forecast with its band, budget use and savings."""
    snapshot = _store().snapshot(query.date)
    if snapshot is None:
        raise Problem(404, "No cost snapshot yet; POST /v1/cost/snapshot makes one.")
    return {
        "as_of": snapshot["as_of"],
        "currency": snapshot["currency"],
        "month_to_date": snapshot["month_to_date"]["total"],
        "forecast_month_end": snapshot["forecast_month_end"],
        "budget": snapshot["budget"],
        "savings": snapshot["savings"],
        "today": snapshot.get("today"),
    }


@api.route("/v1/cost/anomalies", query=AnomaliesQuery, response=AnomaliesAnswer)
def get_anomalies(_request: flask.Request, query: AnomaliesQuery) -> dict[str, Any]:
    """Anomalies and budget crossings announced over the last days."""
    days = query.days
    # Events are dated by billing day (Pacific): count back from today there, not in UTC.
    since = utcnow().astimezone(get_cost_settings().zone).date() - timedelta(days=days)
    store = _store()
    return {
        "since": since.isoformat(),
        "anomalies": [_public(e) for e in store.events("anomaly", since)],
        "crossings": [_public(e) for e in store.events("crossing", since)],
    }


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in {"expire_at"}}


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("cost", lambda: "alerts")


@api.route("/health", **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    """Firestore and the alerts topic probed (cached a few seconds), the price table loads, and
    which billing source is configured."""
    from shared.health import status_code
    from shared.http import json_response

    settings = get_cost_settings()
    if settings.billing_table:
        source = {"name": "bigquery", "table": settings.billing_table, "projects": settings.project_list}
    elif settings.billing_file:
        source = {"name": "file (local fallback)"}
    else:
        source = {"name": None, "note": "no billing source configured; snapshots answer 503"}
    report = dict(_health().report())
    checks = dict(report["checks"])
    try:
        from functions.cost.usage import load_prices

        prices = load_prices(settings.prices_file)
        effective = prices.table_for(utcnow().astimezone(settings.zone).date()).effective_from.isoformat()
        checks["prices"] = {"ok": True, "effective_from": effective}
    except Exception as exc:
        log.exception("price table does not load")
        checks["prices"] = {"ok": False, "error": type(exc).__name__}
    report.update(checks=checks, source=source)
    if not all(c["ok"] for c in checks.values()):
        report["status"] = "degraded"
    return json_response(report, status_code(report))


def handle_budget_event(event: Any) -> None:
    """One GCP Budget notification: raise to retry, return to drop (or when done)."""
    from functions.cost import budget_notifications
    from shared.events import dead_letter_unreadable, read_pubsub
    from shared.idempotency import once

    message = read_pubsub(event, max_age=timedelta(days=2))
    if message is None:
        return
    parsed = budget_notifications.parse(message.attributes, message.data)
    if isinstance(parsed, str):
        log.error("unreadable budget notification: %s", parsed, extra={"message_id": message.message_id})
        # Acknowledged, never unread: kept by the dead-letter store, which pages.
        dead_letter_unreadable(message, f"not a budget notification of schema 1.0: {parsed}")
        return
    attrs, body = parsed
    with once("cost-budget", message.message_id) as first:
        if not first:
            log.info("budget notification already handled", extra={"message_id": message.message_id})
            return
        announced = budget_notifications.record(
            attrs,
            body,
            message_id=message.message_id,
            published_at=message.publish_time,
            store=_store(),
            publish=_publish,
            now=utcnow(),
            dashboard_url=get_cost_settings().dashboard_url,
        )
        log.info(
            "budget notification recorded",
            extra={"budget_id": attrs.budgetId, "cost": str(body.costAmount), "announced": announced},
        )
