"""The persona figures (``health.persona_*``): the latest complete week's satisfaction per persona
with its intervals, the drift tests and the routed mix, from the health capability's weekly
figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from functions.reports.figure_reads import DocumentReads, pct
from functions.reports.panels import Panel
from functions.reports.views import PanelView, RowView, format_value

NO_PERSONAS = (
    "No weekly persona satisfaction for a complete week here: the health-daily job writes it for the "
    "last complete Monday-Sunday week."
)


class PersonaFigures:
    def __init__(self, reads: DocumentReads) -> None:
        self.reads = reads

    def persona_week(self) -> dict[str, Any] | None:
        """The latest complete week's satisfaction whose week ended by the end of the window."""
        end_day = self.reads.days[-1]
        mondays = sorted(
            {d - timedelta(days=d.weekday()) for d in self.reads.days}
            | {self.reads.days[0] - timedelta(days=7 + self.reads.days[0].weekday())}
        )
        complete = [m for m in mondays if m + timedelta(days=7) <= end_day + timedelta(days=1)]
        found = self.reads.once("personas", lambda: self.reads.documents.persona_weeks(complete))
        return found[-1] if found else None

    def _persona_base(self, base: dict[str, Any], week: dict[str, Any]) -> dict[str, Any]:
        return {**base, "title": f"{base['title']} (week of {week.get('week_start')})"}

    def panel_persona_satisfaction(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=NO_PERSONAS)
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
                        f"{pct(share)} helpful (95% CI {pct(ci[0])}-{pct(ci[1])})"
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
            text=f"{pct(value)} helpful over {answers:,} answers" if value is not None else "no data",
            rows=rows,
            note="From the health capability's weekly figures: each request's feedback counted once "
            "(its latest answer), Wilson 95% intervals.",
        )

    def panel_persona_drift(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=NO_PERSONAS)
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

    def panel_persona_mix(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        week = self.persona_week()
        if week is None:
            return PanelView(**base, status="no_data", note=NO_PERSONAS)
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
