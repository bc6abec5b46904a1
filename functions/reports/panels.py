"""Panels as data: the dashboards' definitions (``dashboards.yaml``), validated at load.

A panel names a metric query for the common query API (``shared.metrics.query``), how its
answer becomes a figure (aggregation, an optional ratio of two label selections, a transform),
the unit it is shown in, the target it is held to and its status bands. Dashboards and weekly
reports are both built from these definitions: a report section names dashboard panels, never
a query of its own.

Status bands: ``better: lower`` means a value at or below ``ok`` is ok, above ``breach`` is a
breach, and in between a warning (``better: higher`` mirrors it). ``ok == breach`` leaves no
warning band. A panel without a band is informational.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.metrics.query_model import AGGREGATIONS, QUANTILES
from shared.yaml_files import safe_load

if TYPE_CHECKING:  # only the checks before a deploy read the catalogue, not a cold start
    from shared.metrics.catalogue import Catalogue

DEFAULT_DASHBOARDS_FILE = Path(__file__).resolve().parent / "dashboards.yaml"

Status = Literal["ok", "warning", "breach", "no_data", "info"]
Unit = Literal["percent", "seconds", "per_second", "count", "ratio", "instances", "usd", "duration", "days"]
PanelKind = Literal[
    "stat",
    "timeseries",
    "breakdown",
    "distribution",
    "alerts",
    "incidents",
    # The incident records (``incident_panels.py``): a figure, per-priority times, a list, a trend;
    # and the alerts of a window counted by severity.
    "incident_stat",
    "incident_response",
    "incident_list",
    "incident_trend",
    "alert_counts",
]
INCIDENT_KINDS = ("incident_stat", "incident_response", "incident_list", "incident_trend")
IncidentMeasure = Literal["within_target", "mttr", "mtta", "missed", "opened", "open"]
WINDOWS: dict[str, int] = {"1h": 3600, "24h": 86_400, "7d": 604_800}
# Step of the charted series per window: 60 points an hour, 24 a day, 168 a week. Windows charted
# by the hour read hour rollups (and the minutes of the hours not folded yet): a day costs ~24
# documents per bucket and query instead of 1,440.
STEPS: dict[str, int] = {"1h": 60, "24h": 3600, "7d": 3600}
ADDITIVE = ("count", "sum", "rate")
# Document-backed figures (``Panel.figure``), built by ``figures.py`` from the health, cost and
# incident documents; a test checks each name has a builder.
DOCUMENT_FIGURES = (
    "health.categories",
    "health.category_trend",
    "health.average_score",
    "health.at_risk",
    "health.actions",
    "health.time_to_value",
    "health.nps",
    "health.persona_satisfaction",
    "health.persona_drift",
    "health.persona_mix",
    "cost.month_to_date",
    "cost.forecast",
    "cost.daily",
    "cost.anomalies",
    "cost.opportunities",
    "cost.savings",
    "cost.per_request",
    "cost.per_customer",
    "kpi.scorecard",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Selector(_Strict):
    """Which series of a query count: every condition given must hold (``any``: one of them).
    ``match``: label equals one of the values; ``range``: label read as a number lies in
    ``[low, high]``; ``present``: label set and not empty."""

    match: dict[str, str | list[str]] = {}
    range: dict[str, tuple[float, float]] = {}
    present: list[str] = []
    any: list[Selector] = []

    def label_names(self) -> set[str]:
        names = set(self.match) | set(self.range) | set(self.present)
        for sub in self.any:
            names |= sub.label_names()
        return names

    def matches(self, labels: dict[str, str]) -> bool:
        for key, wanted in self.match.items():
            allowed = [wanted] if isinstance(wanted, str) else wanted
            if labels.get(key) not in allowed:
                return False
        for key, (low, high) in self.range.items():
            try:
                number = float(labels.get(key, ""))
            except ValueError:
                return False
            if not low <= number <= high:
                return False
        if any(not labels.get(key) for key in self.present):
            return False
        return not self.any or any(sub.matches(labels) for sub in self.any)


class Ratio(_Strict):
    """numerator / denominator over the series of one count or sum query; ``complement``
    gives 1 - that (availability from the server-error share)."""

    numerator: Selector
    denominator: Selector = Selector()
    complement: bool = False


class Band(_Strict):
    better: Literal["lower", "higher"]
    ok: float
    breach: float

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.better == "lower" and self.breach < self.ok:
            raise ValueError("better: lower needs breach >= ok")
        if self.better == "higher" and self.breach > self.ok:
            raise ValueError("better: higher needs breach <= ok")
        return self

    def status(self, value: float | None) -> Status:
        if value is None:
            return "no_data"
        if self.better == "lower":
            if value <= self.ok:
                return "ok"
            return "breach" if value > self.breach else "warning"
        if value >= self.ok:
            return "ok"
        return "breach" if value < self.breach else "warning"


class PanelQuery(_Strict):
    metric: str = Field(min_length=1)
    agg: str
    match: dict[str, str] = {}
    group_by: list[str] = []
    # Each series over the step first, then the series combined (shared.metrics.query): a gauge
    # with several series, such as instances across revisions and states, is `avg` + `across: sum`.
    across: Literal["sum", "avg", "min", "max"] | None = None

    @model_validator(mode="after")
    def _agg(self) -> PanelQuery:
        if self.agg not in AGGREGATIONS:
            raise ValueError(f"agg {self.agg!r} is not one of {', '.join(AGGREGATIONS)}")
        return self


class Panel(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    kind: PanelKind
    description: str = ""
    query: PanelQuery | None = None
    ratio: Ratio | None = None
    # distribution: one row per aggregation of the same metric.
    aggs: list[str] = []
    # per_minute: a count summed per step, divided by the minutes the step covers (the last step
    # of a window ending now covers only part of its length).
    transform: Literal["none", "per_minute"] = "none"
    unit: Unit = "count"
    target: str = ""
    band: Band | None = None
    # breakdown rows with a band of their own (regional latency targets).
    row_bands: dict[str, Band] = {}
    # breakdown: the label whose values are the rows; timeseries: one line per value.
    by: str | None = None
    # alerts / incidents: severities shown, and alert kinds (anomaly panels).
    severities: list[str] = []
    alert_kinds: list[str] = []
    chart: bool = True
    # incident_stat / incident_trend: what is measured; incident_trend: over how many weeks;
    # incident_list: the incidents open now, or those opened or resolved in the window.
    measure: IncidentMeasure | None = None
    weeks: int = Field(default=8, ge=2, le=26)
    shows: Literal["open", "window", "missed"] = "open"
    # A figure read from other capabilities' documents (customer health, cost, incidents) instead
    # of the metric store: one of ``DOCUMENT_FIGURES`` (built by ``figures.py``). Its ``query``,
    # if any, is the SLI the figure grades (the KPI scorecard's SLO compliance).
    figure: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Panel:
        metric_kinds = ("stat", "timeseries", "breakdown", "distribution")
        if self.figure is not None:
            if self.figure not in DOCUMENT_FIGURES:
                raise ValueError(f"figure {self.figure!r} is not one of {', '.join(DOCUMENT_FIGURES)}")
            if self.kind not in ("stat", "timeseries", "breakdown"):
                raise ValueError("a document figure is a stat, timeseries or breakdown panel")
            return self
        if self.kind in metric_kinds and self.query is None:
            raise ValueError(f"a {self.kind} panel needs a query")
        if self.kind not in metric_kinds and self.query is not None:
            raise ValueError(f"a {self.kind} panel reads the alert states, not a query")
        if self.ratio is not None and self.query is not None and self.query.agg not in ("count", "sum"):
            raise ValueError("a ratio needs agg count or sum")
        if self.kind in ("breakdown",) and not self.by:
            raise ValueError("a breakdown panel needs `by` (the label of its rows)")
        if self.kind == "distribution":
            bad = [a for a in self.aggs if a not in QUANTILES and a not in ("avg", "min", "max")]
            if not self.aggs or bad:
                raise ValueError("a distribution panel needs aggs among avg, min, max, p50, p90, p95, p99")
        if self.row_bands and self.kind != "breakdown":
            raise ValueError("row_bands only apply to a breakdown panel")
        if self.kind in ("incident_stat", "incident_trend") and self.measure is None:
            raise ValueError(
                f"an {self.kind} panel needs `measure` (within_target, mttr, mtta, missed, opened, open)"
            )
        if self.kind == "incident_trend" and self.measure not in ("within_target", "mttr", "mtta", "opened"):
            raise ValueError("an incident_trend measures within_target, mttr, mtta or opened")
        return self

    def needed_labels(self) -> list[str]:
        """Labels the query must keep apart: the ratio's selectors and the panel's rows."""
        names: set[str] = set(self.query.group_by) if self.query else set()
        if self.ratio is not None:
            names |= self.ratio.numerator.label_names() | self.ratio.denominator.label_names()
        if self.by:
            names.add(self.by)
        return sorted(names)

    def metrics(self) -> list[str]:
        return [self.query.metric] if self.query else []


class Dashboard(_Strict):
    name: str
    title: str
    description: str = ""
    refresh_seconds: int = Field(default=300, ge=10, le=3600)
    panels: list[Panel]

    @model_validator(mode="after")
    def _unique(self) -> Dashboard:
        ids = [p.id for p in self.panels]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"panel ids repeat: {', '.join(dupes)}")
        return self

    def panel(self, panel_id: str) -> Panel:
        for panel in self.panels:
            if panel.id == panel_id:
                return panel
        raise KeyError(f"{self.name} has no panel {panel_id!r}")


class Catalog(_Strict):
    regions: list[str]
    dashboards: dict[str, Dashboard]

    def panel(self, ref: str) -> tuple[Dashboard, Panel]:
        """``dashboard.panel`` → its definitions (how reports name panels)."""
        name, _, panel_id = ref.partition(".")
        if name not in self.dashboards:
            raise KeyError(f"no dashboard {name!r} (known: {', '.join(self.dashboards)})")
        dashboard = self.dashboards[name]
        return dashboard, dashboard.panel(panel_id)

    def metrics(self) -> set[str]:
        return {m for d in self.dashboards.values() for p in d.panels for m in p.metrics()}

    def catalogue_problems(self, catalogue: Catalogue) -> list[str]:
        """What panels read that the metric catalogue says no producer emits (metrics, label
        names, matched values outside a bounded label's values), as ``dashboard.panel: problem``.
        Such a panel loads and then always shows no data."""
        problems: list[str] = []
        for dashboard in self.dashboards.values():
            for panel in dashboard.panels:
                match = dict(panel.query.match) if panel.query else {}
                names = sorted(set(panel.needed_labels()) - set(match))
                for metric in panel.metrics():
                    found = catalogue.check(metric, match) + catalogue.check(metric, names)
                    problems += [f"{dashboard.name}.{panel.id}: {p}" for p in dict.fromkeys(found)]
        return problems


def parse_catalog(data: dict[str, Any]) -> Catalog:
    # Validated as one document so that an error's location names its dashboard.
    dashboards = {name: {"name": name, **body} for name, body in (data.get("dashboards") or {}).items()}
    return Catalog.model_validate({"regions": data.get("regions") or [], "dashboards": dashboards})


@lru_cache(maxsize=4)
def load_catalog(path: Path = DEFAULT_DASHBOARDS_FILE) -> Catalog:
    with open(path, encoding="utf-8") as handle:
        return parse_catalog(safe_load(handle) or {})
