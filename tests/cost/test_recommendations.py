"""Savings opportunities through the real google-cloud-recommender client at the REST stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from google.api_core.exceptions import NotFound

from devtools.processes import free_port
from devtools.recommender_standin import sample, serve
from functions.cost.recommendations import list_opportunities, parents, recommender_client
from functions.cost.service import CostService
from functions.cost.settings import CostSettings
from functions.cost.sources import MemoryBillingSource, rows_from_dicts
from functions.cost.store import MemoryCostStore

ACCOUNT = "0A1B2C-3D4E5F-6A7B8C"


@pytest.fixture
def standin() -> Iterator[tuple[str, object]]:
    httpd = serve(sample("ion-prod", ACCOUNT), free_port())
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


def test_active_cost_recommendations_listed_with_monthly_savings(standin) -> None:  # type: ignore[no-untyped-def]
    endpoint, httpd = standin
    found = list_opportunities(
        recommender_client(endpoint), parents("ion-prod", ["us-central1", "europe-west1"], ACCOUNT)
    )
    assert [(o.description, o.monthly_saving) for o in found.items] == [
        ("Resize ion-main from 16 to 8 vCPUs", 100.0),
        ("Buy a 1-year Cloud SQL spend-based commitment", 88.8),
        ("Stop idle instance ion-reporting-replica", 63.25),
        ("Switch service ion-route to CPU always allocated", 41.6),
    ]
    assert found.total_monthly_saving == 293.65  # the dismissed one is not counted
    assert found.items[0].priority == "P1"
    # 3 project recommenders x 2 regions + the billing account's commitment recommender
    assert len(httpd.requests) == 7
    assert all(r["query"]["filter"] == "stateInfo.state = ACTIVE" for r in httpd.requests)


def test_the_standin_refuses_what_the_api_refuses(standin) -> None:  # type: ignore[no-untyped-def]
    endpoint, _ = standin
    client = recommender_client(endpoint)
    with pytest.raises(NotFound):
        list(
            client.list_recommendations(
                parent="projects/p/locations/us-central1/recommenders/no.such.Recommender"
            )
        )


def test_snapshot_carries_opportunities_and_survives_a_recommender_failure(standin) -> None:  # type: ignore[no-untyped-def]
    endpoint, _ = standin
    rows = rows_from_dicts(
        [
            {
                "service": {"description": "Cloud SQL"},
                "sku": {"description": "vCPU"},
                "usage_start_time": f"2026-11-{d:02d}T12:00:00Z",
                "usage_end_time": f"2026-11-{d:02d}T13:00:00Z",
                "cost": Decimal("20"),
                "currency": "USD",
            }
            for d in range(1, 19)
        ]
    )
    client = recommender_client(endpoint)
    names = parents("ion-prod", ["us-central1"], None)
    service = CostService(
        CostSettings(), MemoryBillingSource(rows), MemoryCostStore(), lambda t: None,
        lambda: datetime(2026, 11, 19, 9, tzinfo=UTC), opportunities=lambda: list_opportunities(client, names),
    )  # fmt: skip
    snap = service.run(date(2026, 11, 18))
    assert snap["opportunities"]["total_monthly_saving"] == 141.6
    bad = recommender_client("http://127.0.0.1:9")  # nothing listens there
    service.opportunities = lambda: list_opportunities(bad, names)
    snap = service.run(date(2026, 11, 18))
    assert snap["opportunities"]["items"] is None
    assert snap["opportunities"]["note"].startswith("Recommender API failed")
    assert snap["month_to_date"]["total"] == 360
