"""The customer-health figures (``health.*`` but the personas'): categories, their trend, the
average score, customers at risk with why, success actions, time to value and NPS, from the health
capability's daily runs, scores and registry."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

from functions.reports.figure_reads import (
    LIST_ROWS,
    DocumentReads,
    as_date,
    as_instant,
    midnight,
    stat,
)
from functions.reports.panels import Panel
from functions.reports.views import PanelView, RowView, SeriesView, format_value

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
TTV_NEW_DAYS = 90  # time to value: customers registered this many days before the end
TTV_HORIZON_DAYS = 28  # ... looked for in their first 28 daily records (the health window)
TTV_CHECKPOINTS = [1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28]
TTV_MAX_CUSTOMERS = 200  # the newest ones (a bounded read: at most 11 + 6 records each)
WEAK_SIGNAL = 60.0
NO_NPS = (
    "No NPS answer in 180 days: import survey answers (POST /v1/customers/{id}/events, type nps) or send "
    "nps with feedback (POST /v2/feedback)."
)


def days_text(value: float | None) -> str:
    """A time to value; the 28-day horizon means more than 28 (the median customer had none)."""
    if value is not None and value >= TTV_HORIZON_DAYS:
        return f"more than {TTV_HORIZON_DAYS} days"
    return format_value(value, "days")


def no_run_note() -> str:
    return "No daily health run in these days: is the health-daily job running, and are customers registered?"


class HealthFigures:
    def __init__(self, reads: DocumentReads) -> None:
        self.reads = reads

    def panel_categories(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        run = self.reads.latest_run()
        if run is None:
            return PanelView(**base, status="no_data", note=no_run_note())
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
            text=f"{total:,} customer{'' if total == 1 else 's'} scored {run.get('as_of')}",
            rows=rows,
        )

    def panel_category_trend(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        runs = self.reads.trend_runs()
        if not runs:
            return PanelView(**base, status="no_data", note=no_run_note())
        series = []
        for name, label in CATEGORY_LABELS.items():
            points = [
                (
                    midnight(date.fromisoformat(str(r["as_of"]))),
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
        scores = [float(c["health"]["score"]) for c in self.reads.scored()]
        return (round(statistics.fmean(scores), 1) if scores else None), len(scores)

    def panel_average_score(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, count = self.average_score()
        text = f"{value:.1f} over {count:,} customers" if value is not None else "no data"
        return stat(panel, base, value, text=text, note=self.reads.no_scores_note() if value is None else "")

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
            fired = as_date((state or {}).get("last_fired"))
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

    def panel_at_risk(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        scored = self.reads.scored()
        if not scored:
            return PanelView(**base, status="no_data", note=self.reads.no_scores_note())
        risky = [c for c in scored if (c.get("health") or {}).get("category") in ("at_risk", "churn_risk")]
        risky.sort(key=lambda c: (float(c["health"]["score"]), str(c.get("id"))))
        rows = [self._customer_row(c) for c in risky[:LIST_ROWS]]
        churn = sum(1 for c in risky if c["health"]["category"] == "churn_risk")
        more = (
            f" The {len(risky) - LIST_ROWS} others: GET /v1/health/customers."
            if len(risky) > LIST_ROWS
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

    def panel_actions(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        runs = self.reads.trend_runs()
        if not runs:
            return PanelView(**base, status="no_data", note=no_run_note())
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
        end = self.reads.end
        end_day = end.astimezone(UTC).date()
        new = []
        for customer in self.reads.customers():
            created = as_instant(customer.get("created_at"))
            if created is None or not (
                self.reads.end - timedelta(days=TTV_NEW_DAYS) <= created < self.reads.end
            ):
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

        checkpoints = self.reads.once(
            "ttv-checkpoints",
            lambda: self.reads.documents.health_scores(
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
        between = self.reads.once(
            "ttv-between",
            lambda: self.reads.documents.health_scores(
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
            values.append(max((midnight(day) - created).total_seconds() / 86400, 0.0))
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

    def panel_time_to_value(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, reached, pending, note = self.time_to_value()
        text = (
            f"{days_text(value)} (median of {reached}; {pending} too new to tell)"
            if value is not None
            else "no data"
        )
        return stat(panel, base, value, text=text, note=note)

    def nps(self) -> tuple[float | None, int]:
        """NPS pooled over customers (each customer's NPS weighed by its answers, 180 days)."""
        total = answers = 0.0
        for customer in self.reads.scored():
            inputs = (((customer.get("health") or {}).get("components") or {}).get("feedback") or {}).get(
                "inputs"
            ) or {}
            n = float(inputs.get("nps_answers") or 0)
            if n > 0 and inputs.get("nps") is not None:
                total += float(inputs["nps"]) * n
                answers += n
        return (round(total / answers, 1) if answers else None), int(answers)

    def panel_nps(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, answers = self.nps()
        note = "" if value is not None else NO_NPS
        text = f"{value:+.1f} ({answers:,} answers)" if value is not None else "no data"
        return stat(panel, base, value, text=text, note=note)
