"""Who gets which report: the audiences file (``audiences.yaml``), each audience's sections and
the dashboard panels they draw on, checked against the dashboards when loaded."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from functions.reports.panels import Catalog
from functions.reports.settings import ReportsSettings
from shared.yaml_files import safe_load


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentSpec(_Strict):
    severities: list[str] = ["critical", "high"]


class CostSpec(_Strict):
    """The cost part of a section (read from the cost capability's documents)."""

    # The panel whose count is the period's requests (cost per million requests).
    requests: str = "overview.requests"
    by_service: bool = True


class SectionSpec(_Strict):
    id: str
    title: str
    figures: list[str] = []
    tables: list[str] = []
    chart: str | None = None
    error_budget: str | None = None
    incidents: IncidentSpec | None = None
    cost: CostSpec | None = None
    # The distribution of customers' latest health category (the health capability's runs).
    customer_health: bool = False
    # Panels shown whole (the incident records' per-priority times, lists and weekly trends).
    panels: list[str] = []
    # The month's cost so far and its forecast, from the latest cost snapshot (daily summary).
    cost_so_far: bool = False
    # A scorecard panel (the KPI scorecard) whose rows become figures, each with its target.
    scorecard: str | None = None

    def refs(self) -> list[str]:
        return [
            *self.figures,
            *self.tables,
            *([self.chart] if self.chart else []),
            *([self.error_budget] if self.error_budget else []),
            *([self.cost.requests] if self.cost else []),
            *self.panels,
            *([self.scorecard] if self.scorecard else []),
        ]


class AudienceSpec(_Strict):
    name: str
    title: str
    recipients: list[str] = []
    time_zone: str | None = None
    # The period a request that names none reports on (the daily operations summary: day).
    period: Literal["week", "month", "day"] = "week"
    sections: list[SectionSpec]

    def mail_to(self) -> list[str]:
        """``ION_REPORTS_TO_<AUDIENCE>`` (comma-separated) when set, else the YAML list."""
        override = os.environ.get(f"ION_REPORTS_TO_{self.name.upper()}")
        if override is not None:
            return [r.strip() for r in override.split(",") if r.strip()]
        return list(self.recipients)


class Audiences(_Strict):
    audiences: dict[str, AudienceSpec]

    def check_against(self, catalog: Catalog) -> Audiences:
        for audience in self.audiences.values():
            for section in audience.sections:
                for ref in section.refs():
                    try:
                        catalog.panel(ref)
                    except KeyError as exc:
                        raise ValueError(f"{audience.name}.{section.id}: {exc.args[0]}") from None
        return self


def parse_audiences(data: dict, catalog: Catalog) -> Audiences:
    # Validated as one document so that an error's location names its audience.
    audiences = {name: {"name": name, **body} for name, body in (data.get("audiences") or {}).items()}
    return Audiences.model_validate({"audiences": audiences}).check_against(catalog)


@lru_cache(maxsize=4)
def load_audiences(path: Path, dashboards_file: Path) -> Audiences:
    """The audiences file, checked against the dashboards it names panels of."""
    from functions.reports.panels import load_catalog

    with open(path, encoding="utf-8") as handle:
        return parse_audiences(safe_load(handle) or {}, load_catalog(dashboards_file))


def configured_audiences(settings: ReportsSettings, *, deployed: bool) -> Audiences:
    """The settings' audiences file; a deployed function refuses to run with an audience nobody
    would receive (naming the variables to set)."""
    loaded = load_audiences(settings.audiences_file, settings.dashboards_file)
    if deployed:
        missing = [f"ION_REPORTS_TO_{a.name.upper()}" for a in loaded.audiences.values() if not a.mail_to()]
        if missing:
            raise RuntimeError(f"reports: deployed without recipients; set {', '.join(missing)}")
    return loaded
