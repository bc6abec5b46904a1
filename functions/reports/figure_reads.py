"""What every document-backed figure reads (``DocumentReads``: each document once per build, panels
being built side by side) and the small formatting helpers they share.

Windows: a document is daily (health runs, cost snapshots) or weekly (persona satisfaction), so a
dashboard shows the latest document of the last 7 days whatever its window, and charts the last
30 days; a report shows the latest document of its period and charts the period's days. The KPI
scorecard is weekly: the 7 days to now on the dashboard, the period in a report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from functions.reports.documents import DocumentSource
from functions.reports.panels import Panel, Status
from functions.reports.period import zone
from functions.reports.views import PanelView, format_value

if TYPE_CHECKING:
    from functions.reports.build import PanelBuilder

LATEST_DAYS = 7  # a dashboard's "latest document": the daily jobs may lag a day or two
TREND_DAYS = 30
LIST_ROWS = 50  # the rows a list panel shows (customers at risk, costs per customer)


def local_days(start: datetime, end: datetime, zone: tzinfo) -> list[date]:
    """The dates in ``zone`` that ``[start, end)`` touches: a report period's own calendar days
    (a New York week is seven, where its instants touch eight UTC dates)."""
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def as_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def pct(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.1f}%"


def status_of(panel: Panel, value: float | None) -> Status:
    if panel.band is None:
        return "info" if value is not None else "no_data"
    return panel.band.status(value)


def stat(
    panel: Panel, base: dict[str, Any], value: float | None, *, text: str = "", note: str = "", **more: Any
) -> PanelView:
    """A single-figure panel, graded by the panel's band."""
    return PanelView(
        **base,
        status=more.pop("status", None) or status_of(panel, value),
        value=value,
        text=text or format_value(value, panel.unit),
        note=note,
        **more,
    )


class DocumentReads:
    """The documents of one window or period, each read once however many panels ask for it."""

    def __init__(
        self,
        documents: DocumentSource,
        *,
        start: datetime,
        end: datetime,
        now: datetime,
        days: list[date],
        trend_days: list[date],
        week: PanelBuilder | None = None,
        live: bool = True,
    ) -> None:
        self.documents = documents
        self.start, self.end, self.now = start, end, now
        self.days = days  # the window's dates, oldest first (the last one is its last day)
        self.trend_days = trend_days
        self.week = week  # the KPI week's panel builder (SLO compliance)
        # live: the latest documents are the window's (a dashboard, or a report of the period
        # that just ended); the customers' latest health is then this window's.
        self.live = live
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    @classmethod
    def for_dashboard(
        cls, documents: DocumentSource, *, now: datetime, week: PanelBuilder | None
    ) -> DocumentReads:
        today = now.astimezone(UTC).date()
        return cls(
            documents,
            start=now - timedelta(days=LATEST_DAYS),
            end=now,
            now=now,
            days=[today - timedelta(days=i) for i in range(LATEST_DAYS, -1, -1)],
            trend_days=[today - timedelta(days=i) for i in range(TREND_DAYS, -1, -1)],
            week=week,
        )

    @classmethod
    def for_period(
        cls,
        documents: DocumentSource,
        *,
        start: datetime,
        end: datetime,
        now: datetime,
        week: PanelBuilder,
        time_zone: str,
    ) -> DocumentReads:
        # Billing days and health runs are dates: the period's are its local ones.
        days = local_days(start, end, zone(time_zone))
        # The customers' latest health is this period's when the period ended at most two days
        # ago (the daily run scores the day before); an older period's is not kept.
        return cls(
            documents,
            start=start,
            end=end,
            now=now,
            days=days,
            trend_days=days,
            week=week,
            live=now - end <= timedelta(days=2),
        )

    def once(self, key: str, read: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = read()
            return self._cache[key]

    def snapshots(self) -> list[dict[str, Any]]:
        return self.once("snapshots", lambda: self.documents.snapshot_bodies(self.days))

    def snapshot(self) -> dict[str, Any] | None:
        found = self.snapshots()
        return found[-1] if found else None

    @staticmethod
    def run_days(days: list[date]) -> list[date]:
        """The health runs of ``days``: the run of a day (``as_of``) scores the day before it."""
        return [d + timedelta(days=1) for d in days]

    def runs(self) -> list[dict[str, Any]]:
        days = sorted(set(self.run_days(self.trend_days)) | set(self.run_days(self.days)))
        return self.once("runs", lambda: self.documents.health_runs(days))

    def trend_runs(self) -> list[dict[str, Any]]:
        wanted = {d.isoformat() for d in self.run_days(self.trend_days)}
        return [r for r in self.runs() if str(r.get("as_of")) in wanted]

    def latest_run(self) -> dict[str, Any] | None:
        wanted = {d.isoformat() for d in self.run_days(self.days)}
        found = [r for r in self.runs() if str(r.get("as_of")) in wanted]
        return found[-1] if found else None

    def customers(self) -> list[dict[str, Any]]:
        return self.once("customers", self.documents.customers)

    def scored(self) -> list[dict[str, Any]]:
        """Customers whose latest health is of this window (none for an older period)."""
        if not self.live:
            return []
        low, high = self.days[0] - timedelta(days=1), self.days[-1] + timedelta(days=1)
        out = []
        for customer in self.customers():
            health = customer.get("health") or {}
            as_of = as_date(health.get("as_of"))
            if health.get("score") is not None and as_of is not None and low <= as_of <= high:
                out.append(customer)
        return out

    def no_scores_note(self) -> str:
        if not self.live:
            return (
                "The registry keeps each customer's latest health only: this figure is not kept for "
                "an earlier period."
            )
        return (
            "No customer scored in this window: is the health-daily job running, and are customers "
            "registered (POST /v1/customers)?"
        )
