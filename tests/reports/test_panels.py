"""The panel definitions: they load, every panel reads a metric something emits with labels its
producer sets, and the seeds' contradictions are resolved as the README says."""

from __future__ import annotations

import pytest
import yaml

from functions.reports.panels import DEFAULT_DASHBOARDS_FILE, load_catalog, parse_catalog
from shared.metrics import catalogue


def test_five_dashboards_as_the_seeds_list_them() -> None:
    catalog = load_catalog()
    seeds = ["overview", "performance", "reliability", "cache", "infrastructure"]
    assert list(catalog.dashboards)[:5] == seeds
    # The report's business figures, the incident records, then the seeds' Customer Success and
    # Financial dashboards.
    assert list(catalog.dashboards)[5:] == ["quality", "incidents", "customer_success", "finance"]
    assert catalog.dashboards["overview"].refresh_seconds == 300
    assert catalog.dashboards["performance"].refresh_seconds == 60


def test_every_panel_reads_an_emitted_metric_with_labels_its_producer_sets() -> None:
    assert load_catalog().catalogue_problems(catalogue.load_catalogue()) == []


def test_a_panel_on_a_metric_nobody_emits_is_caught() -> None:
    data = yaml.safe_load(DEFAULT_DASHBOARDS_FILE.read_text())
    # system.cpu.utilization is a name from the seeds that no producer here emits.
    data["dashboards"]["overview"]["panels"][0]["query"] = {"metric": "system.cpu.utilization", "agg": "avg"}
    data["dashboards"]["overview"]["panels"][0].pop("ratio")
    data["dashboards"]["cache"]["panels"][0]["ratio"]["numerator"] = {"match": {"cache.tier": "l1"}}
    problems = parse_catalog(data).catalogue_problems(catalogue.load_catalogue())
    assert any(p.startswith("overview.availability:") and "system.cpu.utilization" in p for p in problems)
    assert any(p.startswith("cache.combined_hit:") and "cache.tier" in p for p in problems)


def test_contradictions_resolved() -> None:
    catalog = load_catalog()
    cache = catalog.dashboards["cache"].panel("combined_hit")
    assert cache.band is not None
    assert cache.band.status(0.90) == "ok"  # "80-85%" is a floor, not a ceiling
    assert cache.band.status(0.82) == "ok"
    availability = catalog.dashboards["overview"].panel("availability")
    assert availability.ratio is not None
    assert availability.ratio.complement
    assert availability.band is not None
    assert availability.band.status(0.9995) == "ok"
    assert availability.band.status(0.9994) == "warning"
    assert availability.band.status(0.998) == "breach"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "stat"}, "needs a query"),
        ({"query": {"metric": "m", "agg": "median"}}, "agg"),
        ({"band": {"better": "lower", "ok": 0.2, "breach": 0.1}}, "breach >= ok"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(change: dict, message: str) -> None:
    panel = {"id": "p", "title": "P", "kind": "stat", "query": {"metric": "m", "agg": "count"}, **change}
    if change == {"kind": "stat"}:
        panel.pop("query")
    with pytest.raises(ValueError, match=message):
        parse_catalog({"regions": [], "dashboards": {"d": {"title": "D", "panels": [panel]}}})
