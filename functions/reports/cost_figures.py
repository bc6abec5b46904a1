"""The finance figures (``cost.*``): month to date and the month-end forecast against the target
and budget, daily cost, anomalies, Recommender opportunities, savings, cost per request and per
customer, from the cost capability's daily snapshots."""

from __future__ import annotations

from datetime import date
from typing import Any

from functions.reports.figure_reads import (
    LIST_ROWS,
    DocumentReads,
    as_date,
    midnight,
    pct,
    stat,
    status_of,
)
from functions.reports.panels import Panel, Status
from functions.reports.views import PanelView, RowView, SeriesView, format_value


class CostFigures:
    def __init__(self, reads: DocumentReads) -> None:
        self.reads = reads

    def currency(self) -> str | None:
        """The billing account's currency, as the latest snapshot states it (None: no snapshot)."""
        currency = (self.reads.snapshot() or {}).get("currency")
        return str(currency) if currency else None

    def money(self, value: Any) -> str:
        """An amount in the account's currency (the unit is named ``usd``, whatever the currency)."""
        return format_value(float(value) if value is not None else None, "usd", self.currency())

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

    def panel_month_to_date(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        mtd = snap.get("month_to_date") or {}
        budget = snap.get("budget") or {}
        value = float(mtd.get("total", 0.0))
        target, budget_prorated = float(budget.get("target_prorated", 0)), float(budget.get("prorated", 0))
        status: Status = "ok" if value <= target else "warning" if value <= budget_prorated else "breach"
        rows = [
            RowView(label="month to date", value=value, text=self.money(value), status=status),
            RowView(label="target so far", value=target, text=self.money(target)),
            RowView(label="budget so far", value=budget_prorated, text=self.money(budget_prorated)),
        ]
        return PanelView(
            **{
                **base,
                "target": f"<= {self.money(target)} (the {self.money(budget.get('target'))} "
                f"monthly target over {mtd.get('days')} days); budget {self.money(budget_prorated)} "
                f"({self.money(budget.get('amount'))} a month)",
            },
            status=status,
            value=value,
            text=f"{self.money(value)} ({mtd.get('month')}, as of {snap.get('as_of')})",
            rows=rows,
            note=self._source_note(snap),
        )

    def panel_forecast(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        fc = snap.get("forecast_month_end") or {}
        budget = snap.get("budget") or {}
        value, low, high = float(fc.get("total", 0)), float(fc.get("low", 0)), float(fc.get("high", 0))
        target, amount = float(budget.get("target", 0)), float(budget.get("amount", 0))
        status: Status = "ok" if value <= target else "warning" if value <= amount else "breach"
        rows = [
            RowView(label="low", value=low, text=self.money(low)),
            RowView(label="forecast", value=value, text=self.money(value), status=status),
            RowView(label="high", value=high, text=self.money(high)),
            RowView(label="target", value=target, text=self.money(target)),
            RowView(label="budget", value=amount, text=self.money(amount)),
        ]
        return PanelView(
            **{
                **base,
                "target": f"<= {self.money(target)} target; budget {self.money(amount)}",
            },
            status=status,
            value=value,
            text=f"{self.money(value)} (band {self.money(low)} to {self.money(high)})",
            rows=rows,
            note=" ".join(filter(None, [f"Method: {fc.get('method', 'unknown')}.", self._source_note(snap)])),
        )

    def panel_daily(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        wanted = set(self.reads.trend_days)
        points = [
            (midnight(date.fromisoformat(str(d["date"]))), float(d.get("total", 0.0)))
            for d in snap.get("daily") or []
            if date.fromisoformat(str(d["date"])) in wanted
        ]
        total = sum(v for _, v in points) if points else None
        return PanelView(
            **base,
            status="info" if points else "no_data",
            value=total,
            text=f"{self.money(total)} over {len(points)} days" if points else "no data",
            series=[SeriesView(label="net cost per day", points=points)] if points else [],
            note="" if points else "No daily cost in these days.",
        )

    def panel_anomalies(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snaps = self.reads.snapshots()
        if not snaps:
            return self._no_snapshot(base)
        wanted = set(self.reads.trend_days)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for snap in snaps:
            for anomaly in snap.get("anomalies") or []:
                if as_date(anomaly.get("date")) in wanted:
                    found[(str(anomaly["date"]), str(anomaly.get("service")))] = anomaly
        rows = []
        for (day, service), a in sorted(found.items(), reverse=True):
            skus = "; ".join(
                f"{s.get('sku')} {self.money(s.get('cost'))} (expected {self.money(s.get('expected'))})"
                for s in a.get("skus") or []
            )
            rows.append(
                RowView(
                    label=f"{day} {service}",
                    value=float(a.get("cost", 0)),
                    text=f"{self.money(a.get('cost'))} vs {self.money(a.get('expected'))} expected",
                    status="warning",
                    detail=f"threshold {self.money(a.get('threshold'))} over {a.get('weeks')} weeks"
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

    def panel_opportunities(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
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
                text=f"{self.money(item.get('monthly_saving'))}/month",
                detail=f"{item.get('recommender')} · {item.get('subtype')} · priority {item.get('priority')}",
            )
            for item in sorted(items, key=lambda i: -float(i.get("monthly_saving", 0)))
        ]
        total = float(found.get("total_monthly_saving") or sum(r.value or 0 for r in rows))
        return PanelView(
            **base,
            status="info",
            value=total,
            text=f"{self.money(total)}/month in {len(rows)} opportunit{'y' if len(rows) == 1 else 'ies'}",
            rows=rows,
            note="" if rows else "The Recommender API has no cost opportunity now.",
        )

    def panel_savings(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        savings = snap.get("savings") or {}
        value = float(savings.get("saving_pct", 0.0)) / 100
        rows = [
            RowView(
                label=line,
                value=float(item.get("saving", 0)),
                text=f"{self.money(item.get('saving'))} ({float(item.get('saving_pct', 0)):.1f}%)",
                detail=f"baseline {self.money(item.get('baseline'))}, "
                f"forecast {self.money(item.get('forecast'))}",
            )
            for line, item in sorted((savings.get("by_line") or {}).items())
        ]
        gap = float(savings.get("target_gap", 0.0))
        return PanelView(
            **base,
            status=status_of(panel, value),
            value=value,
            text=f"{pct(value)} ({self.money(savings.get('saving'))} this month against the baseline)",
            rows=rows,
            note=f"{self.money(abs(gap))} {'still to save to reach' if gap > 0 else 'under'} the target.",
        )

    def panel_per_request(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        snap = self.reads.snapshot()
        if snap is None:
            return self._no_snapshot(base)
        per = snap.get("per_request") or {}
        value = per.get("cost_per_million")
        requests = per.get("requests")
        return stat(
            panel,
            base,
            float(value) if value is not None else None,
            text=f"{self.money(value)} per million ({format_value(requests, 'count')} requests this month)"
            if value is not None
            else "",
            note=per.get("note") or "",
        )

    def cost_per_customer(self) -> tuple[float | None, str]:
        snap = self.reads.snapshot()
        run = self.reads.latest_run()
        if snap is None:
            return None, "No cost snapshot in these days."
        if run is None or not run.get("customers"):
            return (
                None,
                "No customer scored (no health run in these days): the number of customers is unknown.",
            )
        forecast = float((snap.get("forecast_month_end") or {}).get("total", 0.0))
        return forecast / int(run["customers"]), ""

    def panel_per_customer(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        value, why = self.cost_per_customer()
        snap = self.reads.snapshot() or {}
        per = snap.get("per_customer") or {}
        rows = [
            RowView(
                label=name,
                value=float(item.get("cost", 0)),
                text=f"{self.money(item.get('cost'))} month to date",
                share=item.get("share"),
                detail=f"{format_value(item.get('requests'), 'count')} requests",
            )
            for name, item in sorted(
                (per.get("customers") or {}).items(), key=lambda kv: -float(kv[1].get("cost", 0))
            )
        ]
        notes = [why] if why else []
        hidden = rows[LIST_ROWS:]
        if hidden:
            # A cut list must say so, or it reads as every customer with a cost.
            notes.append(
                f"The {len(hidden)} others ({self.money(sum(r.value or 0.0 for r in hidden))} month to date) "
                "are in the cost snapshot: GET /v1/cost."
            )
        if per.get("note"):
            notes.append(f"Per customer: {per['note']}")
        if per.get("unattributed_requests"):
            notes.append(
                f"{self.money(per.get('unattributed_cost'))} of requests without a customer key are not "
                "attributed."
            )
        return PanelView(
            **base,
            status=status_of(panel, value),
            value=value,
            text=f"{self.money(value)} a month (month-end forecast over the customers scored)"
            if value is not None
            else "no data",
            rows=rows[:LIST_ROWS],
            note=" ".join(notes),
        )
