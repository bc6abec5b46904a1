"""The seeds' KPI scorecard (``kpi.scorecard``): each KPI measured from the health, cost and
incident documents (and the week's SLI), graded against its declared target."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal

from functions.reports.cost_figures import CostFigures
from functions.reports.figure_reads import DocumentReads, as_instant, pct
from functions.reports.health_figures import NO_NPS, TTV_NEW_DAYS, HealthFigures, days_text
from functions.reports.panels import Panel, Status
from functions.reports.views import PanelView, RowView, format_value, worst

CHURN_DAYS = 30  # churn is monthly (the seeds' "< 3% monthly")


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
    KpiTarget("Churn rate", "lower", 0.03, 0.05, lambda v: f"{v * 100:.0f}%", pct, per=" monthly"),
    KpiTarget("Time to value", "lower", 7, 10, lambda v: f"{v:.0f} days", days_text),
    KpiTarget("Active customers", "higher", 0.75, 0.65, lambda v: f"{v * 100:.0f}%", pct),
    KpiTarget("NPS", "higher", 50, 30, lambda v: f"{v:.0f}", lambda v: f"{v:+.1f}"),
    KpiTarget("MTTR", "lower", 7200, 14400, _hours, _hours),
    KpiTarget("SLO compliance", "higher", 0.99, 0.98, lambda v: f"{v * 100:.0f}%", pct),
    KpiTarget(
        "Cost per customer",
        "lower",
        50,
        55,
        lambda v: f"${v:.0f}",
        lambda v: format_value(v, "usd"),
        per=" a month",
    ),
    KpiTarget("Quarterly savings", "higher", 0.10, 0.05, lambda v: f"{v * 100:.0f}%", pct),
)


class KpiFigures:
    def __init__(self, reads: DocumentReads, health: HealthFigures, cost: CostFigures) -> None:
        self.reads = reads
        self.health = health
        self.cost = cost

    def churn_rate(self) -> tuple[float | None, str]:
        customers = self.reads.customers()
        # A departure is a deactivation (the health API's lifecycle): ``deactivated_at`` while
        # the customer is inactive. A registry from before the lifecycle has no such field.
        if not any("deactivated_at" in c for c in customers):
            return None, (
                "The customer registry records no departures (no customer document has the "
                "lifecycle's deactivated_at field): churn cannot be counted."
            )
        start = self.reads.end - timedelta(days=CHURN_DAYS)
        at_start = churned = 0
        for c in customers:
            created = as_instant(c.get("created_at"))
            gone = as_instant(c.get("deactivated_at")) if c.get("status") == "inactive" else None
            if created is None or created >= start or (gone is not None and gone < start):
                continue
            at_start += 1
            churned += gone is not None and gone < self.reads.end
        if not at_start:
            return None, f"No customer was registered {CHURN_DAYS} days before the end."
        return churned / at_start, ""

    def active_share(self) -> tuple[float | None, int]:
        scored = self.reads.scored()
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
        for incident in self.reads.documents.incidents_resolved(self.reads.start, self.reads.end):
            opened, resolved = as_instant(incident.get("opened_at")), as_instant(incident.get("resolved_at"))
            if opened is not None and resolved is not None and resolved >= opened:
                durations.append((resolved - opened).total_seconds())
        return (statistics.fmean(durations) if durations else None), len(durations)

    def slo_compliance(self, panel: Panel) -> tuple[float | None, int, str]:
        """Share of the week's steps (hours; days in a month's report) whose request-based
        availability met its objective (the panel's band), over the steps with traffic."""
        if self.reads.week is None or panel.query is None or panel.ratio is None or panel.band is None:
            return None, 0, "No SLI defined for the scorecard."
        _, points = self.reads.week._figure(panel)
        if not points:
            return None, 0, "No request recorded in the week."
        met = sum(1 for _, v in points if panel.band.status(v) == "ok")
        return met / len(points), len(points), ""

    def quarterly_savings(self) -> tuple[float | None, str]:
        """Quarter to date: the seeds' baseline against each month's latest figure (a past month's
        last forecast, this month's forecast), from the snapshots of the quarter."""
        end_day = self.reads.days[-1]  # the period's last local day (its quarter, not the next)
        first = date(end_day.year, 3 * ((end_day.month - 1) // 3) + 1, 1)
        days = [first + timedelta(days=i) for i in range((end_day - first).days + 1)]
        snaps = self.reads.once("quarter", lambda: self.reads.documents.snapshot_bodies(days))
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
        score, scored = self.health.average_score()
        churn, churn_why = self.churn_rate()
        ttv, reached, pending, ttv_why = self.health.time_to_value()
        active, active_of = self.active_share()
        nps, answers = self.health.nps()
        mttr, resolved = self.mttr()
        slo, steps, slo_why = self.slo_compliance(panel)
        cost, cost_why = self.cost.cost_per_customer()
        saved, saved_why = self.quarterly_savings()
        step = "hours" if not self.reads.week or self.reads.week.step < 86_400 else "days"
        objective = panel.band.ok * 100 if panel.band else 99.95
        measured = {
            "Average health score": (
                score,
                f"mean of the latest 0-100 health score of the {scored:,} customers scored",
                "" if score is not None else self.reads.no_scores_note(),
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
                "" if active is not None else self.reads.no_scores_note(),
            ),
            "NPS": (
                nps,
                f"Net Promoter Score pooled over customers' answers of 180 days ({answers:,})",
                "" if nps is not None else NO_NPS,
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
        kpis = [target.kpi(*measured[target.name]) for target in SCORECARD]
        # The cost is in the billing account's currency; its target stays the seeds' (in dollars),
        # so another currency's figure is shown, not graded against dollars.
        currency = self.cost.currency()
        return [_in_account_currency(k, self.cost.money(k.value), currency) for k in kpis]

    def panel_scorecard(self, panel: Panel, base: dict[str, Any]) -> PanelView:
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


def _in_account_currency(kpi: Kpi, text: str, currency: str | None) -> Kpi:
    if kpi.name != "Cost per customer" or kpi.value is None:
        return kpi
    if currency is None or currency.upper() == "USD":
        return replace(kpi, text=text)
    why = f"the target is in USD and the billing account bills in {currency.upper()}: shown, not graded"
    return replace(kpi, text=text, status="no_data", why_no_data=why)
