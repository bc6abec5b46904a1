"""Document-backed panels (``Panel.figure``): the customer-success and finance dashboards' figures
and the seeds' KPI scorecard, read through the document port (``documents.py``) from what the
health, cost and incident capabilities store. Pure over that port (and, for SLO compliance, the
panel builder of the KPI week); every figure without data says why instead of showing zero.

A figure's name says who builds it: ``health.*`` (``health_figures.py``, the personas'
in ``persona_figures.py``), ``cost.*`` (``cost_figures.py``), ``kpi.*`` (``kpi_figures.py``), all
over one ``DocumentReads`` (``figure_reads.py``), so a document is read once per build.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.reports.cost_figures import CostFigures
from functions.reports.documents import DocumentSource
from functions.reports.figure_reads import DocumentReads
from functions.reports.health_figures import HealthFigures
from functions.reports.kpi_figures import KpiFigures
from functions.reports.panels import Panel
from functions.reports.persona_figures import PersonaFigures
from functions.reports.views import PanelView

if TYPE_CHECKING:
    from functions.reports.build import PanelBuilder


class DocumentFigures:
    """Builds the document-backed panels of one window or period."""

    def __init__(self, reads: DocumentReads) -> None:
        self.reads = reads
        self.health = HealthFigures(reads)
        self.personas = PersonaFigures(reads)
        self.cost = CostFigures(reads)
        self.kpi = KpiFigures(reads, self.health, self.cost)
        self._builders: dict[str, tuple[Any, ...]] = {
            "health": (self.health, self.personas),
            "cost": (self.cost,),
            "kpi": (self.kpi,),
        }

    @classmethod
    def for_dashboard(
        cls, documents: DocumentSource, *, now: datetime, week: PanelBuilder | None
    ) -> DocumentFigures:
        return cls(DocumentReads.for_dashboard(documents, now=now, week=week))

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
    ) -> DocumentFigures:
        return cls(
            DocumentReads.for_period(documents, start=start, end=end, now=now, week=week, time_zone=time_zone)
        )

    def builder(self, figure: str) -> Any:
        """The method that builds ``figure`` (``health.nps`` → ``HealthFigures.panel_nps``), or None."""
        domain, _, name = figure.partition(".")
        for owner in self._builders.get(domain, ()):
            found = getattr(owner, "panel_" + name, None)
            if found is not None:
                return found
        return None

    def build(self, panel: Panel, base: dict[str, Any]) -> PanelView:
        assert panel.figure is not None
        view: PanelView = self.builder(panel.figure)(panel, base)
        if view.unit == "usd" and view.currency is None:
            # Charts and clients format the money in the account's currency, not dollars.
            view = view.model_copy(update={"currency": self.cost.currency()})
        return view
