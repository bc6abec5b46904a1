"""Document-backed panels (``Panel.figure``): the customer-success and finance dashboards' figures
and the seeds' KPI scorecard, read through the document port (``documents.py``) from what the
health, cost and incident capabilities store. Pure over that port (and, for SLO compliance, the
panel builder of the KPI week); every figure without data says why instead of showing zero.

Windows: a document is daily (health runs, cost snapshots) or weekly (persona satisfaction), so a
dashboard shows the latest document of the last 7 days whatever its window, and charts the last
30 days; a report shows the latest document of its period and charts the period's days. The KPI
scorecard is weekly: the 7 days to now on the dashboard, the period in a report.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from functions.reports.documents import DocumentSource
from functions.reports.panels import Panel, Status
from functions.reports.views import PanelView, RowView, SeriesView, format_value, worst

if TYPE_CHECKING:
    from functions.reports.build import PanelBuilder

CATEGORY_LABELS = {
    "healthy": "Healthy",
    "at_risk": "At risk",
    "churn_risk": "Churn risk",
    "usage_unknown": "Usage unknown",
}
ACTION_LABELS = {
    "onboarding_checkin": "onboarding check-in",
    "training_outreach": "training outreach",
    "retention_campaign": "retention campaign",
    "education_campaign": "education campaign",
}
LATEST_DAYS = 7  # a dashboard's "latest document": the daily jobs may lag a day or two
TREND_DAYS = 30
TTV_NEW_DAYS = 90  # time to value: customers registered this many days before the end
TTV_HORIZON_DAYS = 28  # ... looked for in their first 28 daily records (the health window)
TTV_CHECKPOINTS = [1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28]
TTV_MAX_CUSTOMERS = 200  # the newest ones (a bounded read: at most 11 + 6 records each)
CHURN_DAYS = 30  # churn is monthly (the seeds' "< 3% monthly")
AT_RISK_ROWS = 50
WEAK_SIGNAL = 60.0


def utc_days(start: datetime, end: datetime) -> list[date]:
    """The UTC dates that ``[start, end)`` touches."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _date(value: Any) -> date | None:
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


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _days(value: float | None) -> str:
    """A time to value; the 28-day horizon means more than 28 (the median customer had none)."""
    if value is not None and value >= TTV_HORIZON_DAYS:
        return f"more than {TTV_HORIZON_DAYS} days"
    return format_value(value, "days")


def _usd(value: Any) -> str:
    return format_value(float(value) if value is not None else None, "usd")


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Kpi:
    """One line of the seeds' scorecard: the figure, its definition and target, and its grade."""

    name: str
    value: float | None
    text: str
    status: Status
    definition: str
    target: str
    why_no_data: str = ""

    @property
    def grade(self) -> str:
        return {"ok": "met", "warning": "at risk", "breach": "missed"}.get(self.status, "no data")


@dataclass(frozen=True)
class KpiTarget:
    """A scorecard line's target: met at or past ``met``, missed past ``missed``, at risk between;
    ``bound`` writes a threshold, ``show`` a measured value, so that the grade, the value and the
    target's text come from one declaration."""

    name: str
    better: Literal["higher", "lower"]
    met: float
    missed: float
    bound: Callable[[float], str]
    show: Callable[[float], str]
    per: str = ""

    def grade(self, value: float | None) -> Status:
        if value is None:
            return "no_data"
        if self.better == "higher":
            return "ok" if value >= self.met else "breach" if value < self.missed else "warning"
        return "ok" if value <= self.met else "breach" if value > self.missed else "warning"

    @property
    def target(self) -> str:
        met, missed = self.bound(self.met), self.bound(self.missed)
        if self.better == "higher":
            return f"> {met}{self.per} (at risk {missed} to {met}, missed below {missed})"
        return f"< {met}{self.per} (at risk {met} to {missed}, missed above {missed})"

    def kpi(self, value: float | None, definition: str, why_no_data: str = "") -> Kpi:
        text = self.show(value) if value is not None else "no data"
        return Kpi(self.name, value, text, self.grade(value), definition, self.target, why_no_data)


def _hours(seconds: float) -> str:
    from functions.reports.render import duration

    return duration(seconds)


# The seeds' scorecard, in its order.
SCORECARD = (
    KpiTarget("Average health score", "higher", 70, 60, lambda v: f"{v:.0f}", lambda v: f"{v:.1f}"),
    KpiTarget("Churn rate", "lower", 0.03, 0.05, lambda v: f"{v * 100:.0f}%", _pct, per=" monthly"),
    KpiTarget("Time to value", "lower", 7, 10, lambda v: f"{v:.0f} days", _days),
    KpiTarget("Active customers", "higher", 0.75, 0.65, lambda v: f"{v * 100:.0f}%", _pct),
    KpiTarget("NPS", "higher", 50, 30, lambda v: f"{v:.0f}", lambda v: f"{v:+.1f}"),
    KpiTarget("MTTR", "lower", 7200, 14400, _hours, _hours),
    KpiTarget("SLO compliance", "higher", 0.99, 0.98, lambda v: f"{v * 100:.0f}%", _pct),
    KpiTarget(
        "Cost per customer",
        "lower",
        50,
        55,
        lambda v: f"${v:.0f}",
        lambda v: format_value(v, "usd"),
        per=" a month",
    ),
    KpiTarget("Quarterly savings", "higher", 0.10, 0.05, lambda v: f"{v * 100:.0f}%", _pct),
)


class DocumentFigures:
    """Builds the document-backed panels of one window or period, reading each document once."""

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
        self.days = days
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
    ) -> DocumentFigures:
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
        cls, documents: DocumentSource, *, start: datetime, end: datetime, now: datetime, week: PanelBuilder
    ) -> DocumentFigures:
        days = utc_days(start, end)
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

    # reads (once per build; panels are built side by side) ------------------------------------
    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = read()
            return self._cache[key]

    def snapshots(self) -> list[dict[str, Any]]:
        return self._once("snapshots", lambda: self.documents.snapshot_bodies(self.days))

    def snapshot(self) -> dict[str, Any] | None:
        found = self.snapshots()
        return found[-1] if found else None

    @staticmethod
    def run_days(days: list[date]) -> list[date]:
        """The health runs of ``days``: the run of a day (``as_of``) scores the day before it."""
        return [d + timedelta(days=1) for d in days]

    def runs(self) -> list[dict[str, Any]]:
        days = sorted(set(self.run_days(self.trend_days)) | set(self.run_days(self.days)))
        return self._once("runs", lambda: self.documents.health_runs(days))

    def trend_runs(self) -> list[dict[str, Any]]:
        wanted = {d.isoformat() for d in self.run_days(self.trend_days)}
        return [r for r in self.runs() if str(r.get("as_of")) in wanted]

    def latest_run(self) -> dict[str, Any] | None:
        wanted = {d.isoformat() for d in self.run_days(self.days)}
        found = [r for r in self.runs() if str(r.get("as_of")) in wanted]
        return found[-1] if found else None

    def customers(self) -> list[dict[str, Any]]:
        return self._once("customers", self.documents.customers)

    def scored(self) -> list[dict[str, Any]]:
        """Customers whose latest health is of this window (none for an older period)."""
        if not self.live:
            return []
        low, high = self.days[0] - timedelta(days=1), self.days[-1] + timedelta(days=1)
        out = []
        for customer in self.customers():
            health = customer.get("health") or {}
            as_of = _date(health.get("as_of"))
            if health.get("score") is not None and as_of is not None and low <= as_of <= high:
                out.append(customer)
        return out

    def _no_scores_note(self) -> str:
        if not self.live:
            return (
                "The registry keeps each customer's latest health only: this figure is not kept for "
                "an earlier period."
            )
        return (
            "No customer scored in this window: is the health-daily job running, and are customers "
            "registered (POST /v1/customers)?"
        )

    # panels -------------------------------------------------------------------------------------
    def build(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        assert panel.figure is not None
        builder = getattr(self, "_" + panel.figure.replace(".", "_"))
        view: PanelView = builder(panel, base)
        return view

    @staticmethod
    def _status(panel: Panel, value: float | None) -> Status:
        if panel.band is None:
            return "info" if value is not None else "no_data"
        return panel.band.status(value)

    def _stat(
        self,
        panel: Panel,
        base: dict[str, Any],
        value: float | None,
        *,
        text: str = "",
        note: str = "",
        **more: Any,
    ) -> PanelView:
        return PanelView(
            **base,
            status=more.pop("status", None) or self._status(panel, value),
            value=value,
            text=text or format_value(value, panel.unit),
            note=note,
            **more,
        )

    # customer health ----------------------------------------------------------------------------
    def _health_categories(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        run = self.latest_run()
        if run is None:
            return PanelView(**base, status="no_data", note=_no_run_note())
        total = int(run.get("customers") or 0)
        categories = run.get("categories") or {}
        rows = []
        for name, label in CATEGORY_LABELS.items():
            count = int(categories.get(name, 0))
            if name == "usage_unknown" and not count:
                continue
            rows.append(
                RowView(
                    label=label,
                    value=float(count),
                    text=f"{count:,} customer{'' if count == 1 else 's'}",
                    share=count / total if total else None,
                    status="info",
                )
            )
        return PanelView(
            **base,
            status="info",
            value=float(total),
            text=f"{total:,} customers scored {run.get('as_of')}",
            rows=rows,
        )

    def _health_category_trend(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        runs = self.trend_runs()
        if not runs:
            return PanelView(**base, status="no_data", note=_no_run_note())
        series = []
        for name, label in CATEGORY_LABELS.items():
            points = [
                (
                    _midnight(date.fromisoformat(str(r["as_of"]))),
                    float((r.get("categories") or {}).get(name, 0)),
                )
                for r in runs
            ]
            if name == "usage_unknown" and not any(v for _, v in points):
                continue
            series.append(SeriesView(label=label, points=points))
        latest = runs[-1]
        at_risk = sum(int((latest.get("categories") or {}).get(k, 0)) for k in ("at_risk", "churn_risk"))
        return PanelView(
            **base,
            status="info",
            value=float(at_risk),
            text=f"{at_risk:,} at risk or churn risk on {latest.get('as_of')}",
            series=series,
            note="" if len(runs) > 1 else "One daily run so far: the trend needs more days.",
        )

    def average_score(self) -> tuple[float | None, int]:
        scores = [float(c["health"]["score"]) for c in self.scored()]
        return (round(statistics.fmean(scores), 1) if scores else None), len(scores)

    def _health_average_score(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, count = self.average_score()
        text = f"{value:.1f} over {count:,} customers" if value is not None else "no data"
        return self._stat(panel, base, value, text=text, note=self._no_scores_note() if value is None else "")

    def _customer_row(self, customer: dict[str, Any]) -> RowView:
        health = customer.get("health") or {}
        score = float(health.get("score") or 0.0)
        category = str(health.get("category") or "")
        contact = customer.get("contact") or {}
        csm = (contact.get("name") or contact.get("email")) if isinstance(contact, dict) else str(contact)
        why = [str(m.get("reason")) for m in (health.get("movers") or []) if m.get("reason")]
        components = health.get("components") or {}
        # The weakest signals (below 60) with their headline input, beside what moved the score.
        low = sorted(
            (
                (name, c)
                for name, c in components.items()
                if isinstance(c, dict) and c.get("score") is not None and float(c["score"]) < WEAK_SIGNAL
            ),
            key=lambda item: float(item[1]["score"]),
        )[:2]
        for name, component in low:
            headline = component.get("headline")
            inputs = component.get("inputs") or {}
            shown = (
                f" ({headline} {inputs[headline]})" if headline and inputs.get(headline) is not None else ""
            )
            why.append(f"{name} {float(component['score']):.0f}{shown}")
        actions = []
        for name, state in sorted((health.get("actions") or {}).items()):
            fired = _date((state or {}).get("last_fired"))
            if fired is not None:
                actions.append(f"{ACTION_LABELS.get(name, name)} sent {fired.isoformat()}")
        detail = (
            f"CSM {csm or 'none'} · plan {customer.get('plan') or '-'}"
            f" · segment {customer.get('segment') or '-'}"
            f" · why: {'; '.join(why) or 'no component data'}"
            f" · actions: {', '.join(actions) or 'none yet'}"
        )
        return RowView(
            label=f"{customer.get('name') or customer.get('id')} ({customer.get('id')})",
            value=score,
            text=f"{score:.1f} {CATEGORY_LABELS.get(category, category)}",
            status="breach" if category == "churn_risk" else "warning",
            detail=detail,
        )

    def _health_at_risk(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        scored = self.scored()
        if not scored:
            return PanelView(**base, status="no_data", note=self._no_scores_note())
        risky = [c for c in scored if (c.get("health") or {}).get("category") in ("at_risk", "churn_risk")]
        risky.sort(key=lambda c: (float(c["health"]["score"]), str(c.get("id"))))
        rows = [self._customer_row(c) for c in risky[:AT_RISK_ROWS]]
        churn = sum(1 for c in risky if c["health"]["category"] == "churn_risk")
        more = (
            f" The {len(risky) - AT_RISK_ROWS} others: GET /v1/health/customers."
            if len(risky) > AT_RISK_ROWS
            else ""
        )
        return PanelView(
            **base,
            status="breach" if churn else "warning" if risky else "ok",
            value=float(len(risky)),
            text=f"{len(risky)} of {len(scored)} customers ({churn} at churn risk)",
            rows=rows,
            note=("No customer at risk." if not risky else "Lowest score first.") + more,
        )

    def _health_actions(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        runs = self.trend_runs()
        if not runs:
            return PanelView(**base, status="no_data", note=_no_run_note())
        fired: dict[str, int] = {}
        for run in runs:
            for name, count in (run.get("actions_fired") or {}).items():
                fired[name] = fired.get(name, 0) + int(count)
        total = sum(fired.values())
        rows = [
            RowView(label=ACTION_LABELS.get(name, name), value=float(n), text=f"{n:,}", share=n / total)
            for name, n in sorted(fired.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return PanelView(
            **base,
            status="info",
            value=float(total),
            text=f"{total:,} sent in {len(runs)} daily run{'' if len(runs) == 1 else 's'}",
            rows=rows,
            note="" if rows else "No success action fired in these days.",
        )

    def time_to_value(self) -> tuple[float | None, int, int, str]:
        """Median days from registration to the first daily record with a request in its window,
        over customers registered in the 90 days before the end; (median, counted, pending, note).

        A customer younger than the health window (28 days) has its whole life in the window, so
        its records' ``active_days`` never decrease: the first active record is found from a few
        checkpoints (exact through day 7, the target) and then the days between two of them, two
        batched reads instead of 28 per customer. A customer with no request in its first 28 days
        counts as more than 28; one younger than that without a request yet is pending."""
        end_day = self.end.astimezone(UTC).date()
        new = []
        for customer in self.customers():
            created = _instant(customer.get("created_at"))
            if created is None or not (self.end - timedelta(days=TTV_NEW_DAYS) <= created < self.end):
                continue
            new.append((created, str(customer.get("id"))))
        if not new:
            return None, 0, 0, f"No customer registered in the {TTV_NEW_DAYS} days before the end."
        new.sort(reverse=True)
        new = new[:TTV_MAX_CUSTOMERS]

        def record_id(cid: str, created: datetime, offset: int) -> str:
            return f"{cid}:{(created.date() + timedelta(days=offset)).isoformat()}"

        def active(record: dict[str, Any] | None) -> bool:
            engagement = ((record or {}).get("components") or {}).get("engagement") or {}
            return float((engagement.get("inputs") or {}).get("active_days") or 0) > 0

        def due(created: datetime, offsets: list[int]) -> list[int]:
            return [o for o in offsets if created.date() + timedelta(days=o) <= end_day]

        checkpoints = self._once(
            "ttv-checkpoints",
            lambda: self.documents.health_scores(
                [record_id(cid, created, o) for created, cid in new for o in due(created, TTV_CHECKPOINTS)]
            ),
        )
        first: dict[str, tuple[int, int]] = {}  # customer: (last checkpoint without, first with)
        for created, cid in new:
            before = 0
            for offset in due(created, TTV_CHECKPOINTS):
                if active(checkpoints.get(record_id(cid, created, offset))):
                    first[cid] = (before, offset)
                    break
                before = offset
        between = self._once(
            "ttv-between",
            lambda: self.documents.health_scores(
                [
                    record_id(cid, created, o)
                    for created, cid in new
                    if cid in first
                    for o in range(first[cid][0] + 1, first[cid][1])
                ]
            ),
        )
        values, pending = [], 0
        for created, cid in new:
            if cid not in first:
                if (end_day - created.date()).days >= TTV_HORIZON_DAYS:
                    values.append(math.inf)  # no request in its first 28 days
                else:
                    pending += 1
                continue
            low, high = first[cid]
            offset = next(
                (o for o in range(low + 1, high) if active(between.get(record_id(cid, created, o)))), high
            )
            day = created.date() + timedelta(days=offset)
            values.append(max((_midnight(day) - created).total_seconds() / 86400, 0.0))
        if not values:
            return (
                None,
                0,
                pending,
                (
                    f"None of the {pending} customers registered in the last {TTV_NEW_DAYS} days has made a "
                    "request the daily health run saw yet."
                ),
            )
        median = statistics.median(values)
        return (
            (round(median, 1) if math.isfinite(median) else float(TTV_HORIZON_DAYS)),
            len(values),
            pending,
            "",
        )

    def _health_time_to_value(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, reached, pending, note = self.time_to_value()
        text = (
            f"{_days(value)} (median of {reached}; {pending} too new to tell)"
            if value is not None
            else "no data"
        )
        return self._stat(panel, base, value, text=text, note=note)

    def nps(self) -> tuple[float | None, int]:
        """NPS pooled over customers (each customer's NPS weighed by its answers, 180 days)."""
        total = answers = 0.0
        for customer in self.scored():
            inputs = (((customer.get("health") or {}).get("components") or {}).get("feedback") or {}).get(
                "inputs"
            ) or {}
            n = float(inputs.get("nps_answers") or 0)
            if n > 0 and inputs.get("nps") is not None:
                total += float(inputs["nps"]) * n
                answers += n
        return (round(total / answers, 1) if answers else None), int(answers)

    def _health_nps(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, answers = self.nps()
        note = "" if value is not None else _NO_NPS
        text = f"{value:+.1f} ({answers:,} answers)" if value is not None else "no data"
        return self._stat(panel, base, value, text=text, note=note)

    # persona satisfaction (health's weekly figures: one answer per request, intervals, drift) --
    def persona_week(self) -> dict[str, Any] | None:
        """The latest complete week's satisfaction whose week ended by the end of the window."""
        end_day = self.end.astimezone(UTC).date()
        mondays = sorted(
            {d - timedelta(days=d.weekday()) for d in self.days}
            | {self.days[0] - timedelta(days=7 + self.days[0].weekday())}
        )
        complete = [m for m in mondays if m + timedelta(days=7) <= end_day + timedelta(days=1)]
        found = self._once("personas", lambda: self.documents.persona_weeks(complete))
        return found[-1] if found else None

    def _persona_base(self, base: dict[str, Any], week: dict[str, Any]) -> dict[str, Any]:
        return {**base, "title": f"{base['title']} (week of {week.get('week_start')})"}

    def _health_persona_satisfaction(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=_NO_PERSONAS)
        rows, helpful, answers = [], 0.0, 0
        for item in week.get("satisfaction") or []:
            n = int(item.get("answers") or 0)
            share = item.get("helpful_share")
            ci = item.get("helpful_ci")
            if share is not None:
                helpful += float(share) * n
                answers += n
            rating = item.get("mean_rating")
            rating_ci = item.get("rating_ci")
            rating_text = (
                f"mean rating {rating:.2f} (95% CI {rating_ci[0]:.2f}-{rating_ci[1]:.2f}) "
                f"of {item.get('ratings')}"
                if rating is not None and rating_ci
                else "no rating"
            )
            rows.append(
                RowView(
                    label=str(item.get("persona")),
                    value=share,
                    text=(
                        f"{_pct(share)} helpful (95% CI {_pct(ci[0])}-{_pct(ci[1])})"
                        if share is not None and ci
                        else "no answer"
                    ),
                    detail=f"{n:,} answers, one per request (its latest); {rating_text}",
                )
            )
        value = helpful / answers if answers else None
        return PanelView(
            **self._persona_base(base, week),
            status="info" if value is not None else "no_data",
            value=value,
            text=f"{_pct(value)} helpful over {answers:,} answers" if value is not None else "no data",
            rows=rows,
            note="From the health capability's weekly figures: each request's feedback counted once "
            "(its latest answer), Wilson 95% intervals.",
        )

    def _health_persona_drift(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=_NO_PERSONAS)
        rows = []
        for test in week.get("drift") or []:
            against = str(test.get("against"))
            p, js = test.get("p_value"), test.get("js_distance")
            stats = (
                f"p = {p:.3g}, Jensen-Shannon distance {js:.3f}"
                if p is not None and js is not None
                else "not tested"
            )
            rows.append(
                RowView(
                    label=f"against the {against} mix",
                    value=js,
                    text="drift" if test.get("drift") else "no drift",
                    status="breach" if test.get("drift") else "ok",
                    detail=f"{stats}; {test.get('requests', 0):,} routed requests"
                    + (f"; {test['note']}" if test.get("note") else ""),
                )
            )
        drifting = [r.label for r in rows if r.status == "breach"]
        return PanelView(
            **self._persona_base(base, week),
            status="breach" if drifting else "ok" if rows else "no_data",
            value=float(len(drifting)),
            text=f"drift {', '.join(drifting)}" if drifting else "no drift",
            rows=rows,
            note="Drift = p < 0.01 and distance >= 0.03 with at least 200 requests (health's test).",
        )

    def _health_persona_mix(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=_NO_PERSONAS)
        requests = {k: float(v) for k, v in (week.get("requests") or {}).items()}
        total = sum(requests.values())
        rows = [
            RowView(label=k, value=v, text=format_value(v, "count"), share=v / total if total else None)
            for k, v in sorted(requests.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return PanelView(
            **self._persona_base(base, week),
            status="info" if rows else "no_data",
            value=total if rows else None,
            text=format_value(total, "count") if rows else "no data",
            rows=rows,
            note="Routed requests only: recommendations' picks are not in the mix.",
        )

    # cost -------------------------------------------------------------------------------------
    def _no_snapshot(self, base: dict[str, Any]) -> PanelView:
        return PanelView(
            **base,
            status="no_data",
            note="No cost snapshot in these days: is the cost-snapshot job running and the billing export "
            "configured?",
        )

    @staticmethod
    def _source_note(snapshot: dict[str, Any]) -> str:
        source = snapshot.get("source") or {}
        if source.get("fallback"):
            return (
                f"Built from {source.get('name') or 'a local fallback'}, not the billing export: "
                "not billed figures."
            )
        return ""

    def _cost_month_to_date(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        mtd = snap.get("month_to_date") or {}
        budget = snap.get("budget") or {}
        value = float(mtd.get("total", 0.0))
        target, budget_prorated = float(budget.get("target_prorated", 0)), float(budget.get("prorated", 0))
        status: Status = "ok" if value <= target else "warning" if value <= budget_prorated else "breach"
        rows = [
            RowView(label="month to date", value=value, text=format_value(value, "usd"), status=status),
            RowView(label="target so far", value=target, text=format_value(target, "usd")),
            RowView(label="budget so far", value=budget_prorated, text=format_value(budget_prorated, "usd")),
        ]
        return PanelView(
            **{
                **base,
                "target": f"<= {_usd(target)} (the {_usd(budget.get('target'))} "
                f"monthly target over {mtd.get('days')} days); budget {_usd(budget_prorated)} "
                f"({_usd(budget.get('amount'))} a month)",
            },
            status=status,
            value=value,
            text=f"{_usd(value)} ({mtd.get('month')}, as of {snap.get('as_of')})",
            rows=rows,
            note=self._source_note(snap),
        )

    def _cost_forecast(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        fc = snap.get("forecast_month_end") or {}
        budget = snap.get("budget") or {}
        value, low, high = float(fc.get("total", 0)), float(fc.get("low", 0)), float(fc.get("high", 0))
        target, amount = float(budget.get("target", 0)), float(budget.get("amount", 0))
        status: Status = "ok" if value <= target else "warning" if value <= amount else "breach"
        rows = [
            RowView(label="low", value=low, text=format_value(low, "usd")),
            RowView(label="forecast", value=value, text=format_value(value, "usd"), status=status),
            RowView(label="high", value=high, text=format_value(high, "usd")),
            RowView(label="target", value=target, text=format_value(target, "usd")),
            RowView(label="budget", value=amount, text=format_value(amount, "usd")),
        ]
        return PanelView(
            **{
                **base,
                "target": f"<= {_usd(target)} target; budget {_usd(amount)}",
            },
            status=status,
            value=value,
            text=f"{_usd(value)} (band {_usd(low)} to {_usd(high)})",
            rows=rows,
            note=" ".join(filter(None, [f"Method: {fc.get('method', 'unknown')}.", self._source_note(snap)])),
        )

    def _cost_daily(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        wanted = set(self.trend_days)
        points = [
            (_midnight(date.fromisoformat(str(d["date"]))), float(d.get("total", 0.0)))
            for d in snap.get("daily") or []
            if date.fromisoformat(str(d["date"])) in wanted
        ]
        total = sum(v for _, v in points) if points else None
        return PanelView(
            **base,
            status="info" if points else "no_data",
            value=total,
            text=f"{_usd(total)} over {len(points)} days" if points else "no data",
            series=[SeriesView(label="net cost per day", points=points)] if points else [],
            note="" if points else "No daily cost in these days.",
        )

    def _cost_anomalies(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snaps = self.snapshots()
        if not snaps:
            return self._no_snapshot(base)
        wanted = set(self.trend_days)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for snap in snaps:
            for anomaly in snap.get("anomalies") or []:
                if _date(anomaly.get("date")) in wanted:
                    found[(str(anomaly["date"]), str(anomaly.get("service")))] = anomaly
        rows = []
        for (day, service), a in sorted(found.items(), reverse=True):
            skus = "; ".join(
                f"{s.get('sku')} {_usd(s.get('cost'))} (expected {_usd(s.get('expected'))})"
                for s in a.get("skus") or []
            )
            rows.append(
                RowView(
                    label=f"{day} {service}",
                    value=float(a.get("cost", 0)),
                    text=f"{_usd(a.get('cost'))} vs {_usd(a.get('expected'))} expected",
                    status="warning",
                    detail=f"threshold {_usd(a.get('threshold'))} over {a.get('weeks')} weeks"
                    + (f"; moved: {skus}" if skus else ""),
                )
            )
        return PanelView(
            **base,
            status="warning" if rows else "ok",
            value=float(len(rows)),
            text=f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'}",
            rows=rows,
            note="" if rows else "No cost anomaly in these days.",
        )

    def _cost_opportunities(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        found = snap.get("opportunities") or {}
        items = found.get("items")
        if items is None:
            return PanelView(
                **base,
                status="no_data",
                note=f"No Recommender opportunities: {found.get('note') or 'the snapshot holds none'}.",
            )
        rows = [
            RowView(
                label=str(item.get("description") or item.get("name")),
                value=float(item.get("monthly_saving", 0)),
                text=f"{_usd(item.get('monthly_saving'))}/month",
                detail=f"{item.get('recommender')} · {item.get('subtype')} · priority {item.get('priority')}",
            )
            for item in sorted(items, key=lambda i: -float(i.get("monthly_saving", 0)))
        ]
        total = float(found.get("total_monthly_saving") or sum(r.value or 0 for r in rows))
        return PanelView(
            **base,
            status="info",
            value=total,
            text=f"{_usd(total)}/month in {len(rows)} opportunit{'y' if len(rows) == 1 else 'ies'}",
            rows=rows,
            note="" if rows else "The Recommender API has no cost opportunity now.",
        )

    def _cost_savings(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        savings = snap.get("savings") or {}
        value = float(savings.get("saving_pct", 0.0)) / 100
        rows = [
            RowView(
                label=line,
                value=float(item.get("saving", 0)),
                text=f"{_usd(item.get('saving'))} ({float(item.get('saving_pct', 0)):.1f}%)",
                detail=f"baseline {_usd(item.get('baseline'))}, forecast {_usd(item.get('forecast'))}",
            )
            for line, item in sorted((savings.get("by_line") or {}).items())
        ]
        gap = float(savings.get("target_gap", 0.0))
        return PanelView(
            **base,
            status=self._status(panel, value),
            value=value,
            text=f"{_pct(value)} ({_usd(savings.get('saving'))} this month against the baseline)",
            rows=rows,
            note=f"{_usd(abs(gap))} {'still to save to reach' if gap > 0 else 'under'} the target.",
        )

    def _cost_per_request(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        per = snap.get("per_request") or {}
        value = per.get("cost_per_million")
        requests = per.get("requests")
        return self._stat(
            panel,
            base,
            float(value) if value is not None else None,
            text=f"{_usd(value)} per million ({format_value(requests, 'count')} requests this month)"
            if value is not None
            else "",
            note=per.get("note") or "",
        )

    def cost_per_customer(self) -> tuple[float | None, str]:
        snap = self.snapshot()
        run = self.latest_run()
        if snap is None:
            return None, "No cost snapshot in these days."
        if run is None or not run.get("customers"):
            return (
                None,
                "No customer scored (no health run in these days): the number of customers is unknown.",
            )
        forecast = float((snap.get("forecast_month_end") or {}).get("total", 0.0))
        return forecast / int(run["customers"]), ""

    def _cost_per_customer(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, why = self.cost_per_customer()
        snap = self.snapshot() or {}
        per = snap.get("per_customer") or {}
        rows = [
            RowView(
                label=name,
                value=float(item.get("cost", 0)),
                text=f"{_usd(item.get('cost'))} month to date",
                share=item.get("share"),
                detail=f"{format_value(item.get('requests'), 'count')} requests",
            )
            for name, item in sorted(
                (per.get("customers") or {}).items(), key=lambda kv: -float(kv[1].get("cost", 0))
            )
        ]
        notes = [why] if why else []
        if per.get("note"):
            notes.append(f"Per customer: {per['note']}")
        if per.get("unattributed_requests"):
            notes.append(
                f"{_usd(per.get('unattributed_cost'))} of requests without a customer key are not attributed."
            )
        return PanelView(
            **base,
            status=self._status(panel, value),
            value=value,
            text=f"{_usd(value)} a month (month-end forecast over the customers scored)"
            if value is not None
            else "no data",
            rows=rows[:AT_RISK_ROWS],
            note=" ".join(notes),
        )

    # the KPI scorecard ------------------------------------------------------------------------
    def churn_rate(self) -> tuple[float | None, str]:
        customers = self.customers()
        # A departure is a deactivation (the health API's lifecycle): ``deactivated_at`` while
        # the customer is inactive. A registry from before the lifecycle has no such field.
        if not any("deactivated_at" in c for c in customers):
            return None, (
                "The customer registry records no departures (no customer document has the "
                "lifecycle's deactivated_at field): churn cannot be counted."
            )
        start = self.end - timedelta(days=CHURN_DAYS)
        at_start = churned = 0
        for c in customers:
            created = _instant(c.get("created_at"))
            gone = _instant(c.get("deactivated_at")) if c.get("status") == "inactive" else None
            if created is None or created >= start or (gone is not None and gone < start):
                continue
            at_start += 1
            churned += gone is not None and gone < self.end
        if not at_start:
            return None, f"No customer was registered {CHURN_DAYS} days before the end."
        return churned / at_start, ""

    def active_share(self) -> tuple[float | None, int]:
        scored = self.scored()
        active = sum(
            1
            for c in scored
            if float(
                (
                    (((c.get("health") or {}).get("components") or {}).get("engagement") or {}).get("inputs")
                    or {}
                ).get("active_days")
                or 0
            )
            > 0
        )
        return (active / len(scored) if scored else None), len(scored)

    def mttr(self) -> tuple[float | None, int]:
        durations = []
        for incident in self.documents.incidents_resolved(self.start, self.end):
            opened, resolved = _instant(incident.get("opened_at")), _instant(incident.get("resolved_at"))
            if opened is not None and resolved is not None and resolved >= opened:
                durations.append((resolved - opened).total_seconds())
        return (statistics.fmean(durations) if durations else None), len(durations)

    def slo_compliance(self, panel: Panel) -> tuple[float | None, int, str]:
        """Share of the week's steps (hours; days in a month's report) whose request-based
        availability met its objective (the panel's band), over the steps with traffic."""
        if self.week is None or panel.query is None or panel.ratio is None or panel.band is None:
            return None, 0, "No SLI defined for the scorecard."
        _, points = self.week._figure(panel)
        if not points:
            return None, 0, "No request recorded in the week."
        met = sum(1 for _, v in points if panel.band.status(v) == "ok")
        return met / len(points), len(points), ""

    def quarterly_savings(self) -> tuple[float | None, str]:
        """Quarter to date: the seeds' baseline against each month's latest figure (a past month's
        last forecast, this month's forecast), from the snapshots of the quarter."""
        end_day = (self.end - timedelta(microseconds=1)).astimezone(UTC).date()
        first = date(end_day.year, 3 * ((end_day.month - 1) // 3) + 1, 1)
        days = [first + timedelta(days=i) for i in range((end_day - first).days + 1)]
        snaps = self._once("quarter", lambda: self.documents.snapshot_bodies(days))
        latest: dict[str, dict[str, Any]] = {}
        for snap in snaps:
            month = str(snap.get("as_of", ""))[:7]
            latest[month] = snap  # oldest first: the last one wins
        if not latest:
            return None, "No cost snapshot this quarter."
        baseline = sum(float((s.get("savings") or {}).get("baseline_total", 0)) for s in latest.values())
        forecast = sum(float((s.get("savings") or {}).get("forecast_total", 0)) for s in latest.values())
        if baseline <= 0:
            return None, "The snapshots hold no baseline."
        return (baseline - forecast) / baseline, ""

    def scorecard(self, panel: Panel) -> list[Kpi]:
        """Each of the seeds' KPIs measured, with its definition and, without data, why."""
        score, scored = self.average_score()
        churn, churn_why = self.churn_rate()
        ttv, reached, pending, ttv_why = self.time_to_value()
        active, active_of = self.active_share()
        nps, answers = self.nps()
        mttr, resolved = self.mttr()
        slo, steps, slo_why = self.slo_compliance(panel)
        cost, cost_why = self.cost_per_customer()
        saved, saved_why = self.quarterly_savings()
        step = "hours" if not self.week or self.week.step < 86_400 else "days"
        objective = panel.band.ok * 100 if panel.band else 99.95
        measured = {
            "Average health score": (
                score,
                f"mean of the latest 0-100 health score of the {scored:,} customers scored",
                "" if score is not None else self._no_scores_note(),
            ),
            "Churn rate": (
                churn,
                f"customers deactivated in the {CHURN_DAYS} days to the end, over those registered "
                "before them",
                churn_why,
            ),
            "Time to value": (
                ttv,
                "median days from registration to the first daily health run that saw a request, "
                f"customers registered in the last {TTV_NEW_DAYS} days ({reached} counted, none in 28 days "
                f"as more than 28; {pending} younger without a request yet)",
                ttv_why,
            ),
            "Active customers": (
                active,
                f"share of the {active_of:,} customers scored with a request in the last 28 days",
                "" if active is not None else self._no_scores_note(),
            ),
            "NPS": (
                nps,
                f"Net Promoter Score pooled over customers' answers of 180 days ({answers:,})",
                "" if nps is not None else _NO_NPS,
            ),
            "MTTR": (
                mttr,
                f"mean of resolved_at - opened_at of the {resolved} incidents resolved in the week",
                ""
                if mttr is not None
                else "No incident resolved in the week (the incidents collection holds none).",
            ),
            "SLO compliance": (
                slo,
                f"share of the {steps} {step} with traffic whose request-based availability met "
                f"{objective:.2f}%",
                slo_why,
            ),
            "Cost per customer": (cost, "the month-end cost forecast over the customers scored", cost_why),
            "Quarterly savings": (
                saved,
                "the quarter's months against the seeds' cost baseline (past months' last forecast, this "
                "month's forecast)",
                saved_why,
            ),
        }
        return [target.kpi(*measured[target.name]) for target in SCORECARD]

    def _kpi_scorecard(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        kpis = self.scorecard(panel)
        rows = [
            RowView(
                label=k.name,
                value=k.value,
                text=k.text if k.status == "no_data" else f"{k.text}: {k.grade}",
                status=k.status,
                detail=f"{k.definition}. Target {k.target}."
                + (f" No data: {k.why_no_data}" if k.why_no_data else ""),
            )
            for k in kpis
        ]
        graded = [k for k in kpis if k.status != "no_data"]
        met = sum(1 for k in graded if k.status == "ok")
        return PanelView(
            **base,
            status=worst([k.status for k in graded]) if graded else "no_data",
            value=float(met),
            text=f"{met} of {len(kpis)} met ({len(kpis) - len(graded)} without data)",
            rows=rows,
        )


_NO_NPS = (
    "No NPS answer in 180 days: import survey answers (POST /v1/customers/{id}/events, type nps) or send "
    "nps with feedback (POST /v2/feedback)."
)
_NO_PERSONAS = (
    "No weekly persona satisfaction for a complete week here: the health-daily job writes it for the "
    "last complete Monday-Sunday week."
)


def _no_run_note() -> str:
    return "No daily health run in these days: is the health-daily job running, and are customers registered?"
