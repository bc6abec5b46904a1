"""Savings opportunities from the Recommender API: Cloud Run and Cloud SQL cost and idle
recommenders per region, and the spend-based committed-use recommender of the billing account,
each listed with its estimated monthly saving.

Through google-cloud-recommender's ``RecommenderClient`` (REST transport), pointed at a local
stand-in by ``ION_COST_RECOMMENDER_ENDPOINT`` (``devtools/recommender_standin.py``). A cost
projection is negative for a saving over its ``duration``; the monthly saving is that amount
scaled to 30 days. Only ACTIVE recommendations count.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

PROJECT_RECOMMENDERS = (
    "google.run.service.CostRecommender",
    "google.cloudsql.instance.IdleRecommender",
    "google.cloudsql.instance.OverprovisionedRecommender",
)
BILLING_RECOMMENDERS = ("google.cloudbilling.commitment.SpendBasedCommitmentRecommender",)
MONTH = timedelta(days=30)


class Opportunity(BaseModel):
    recommender: str
    name: str
    description: str
    subtype: str
    priority: str
    monthly_saving: float
    currency: str


class Opportunities(BaseModel):
    items: list[Opportunity] | None
    total_monthly_saving: float | None
    currency: str | None
    note: str | None = None


def parents(project: str, locations: list[str], billing_account: str | None) -> list[str]:
    out = [
        f"projects/{project}/locations/{location}/recommenders/{recommender}"
        for location in locations
        for recommender in PROJECT_RECOMMENDERS
    ]
    if billing_account:
        out += [
            f"billingAccounts/{billing_account}/locations/global/recommenders/{r}"
            for r in BILLING_RECOMMENDERS
        ]
    return out


def recommender_client(endpoint: str | None) -> Any:
    from google.cloud import recommender_v1

    if not endpoint:
        return recommender_v1.RecommenderClient()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return recommender_v1.RecommenderClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def _money(units: int, nanos: int) -> float:
    return units + nanos / 1e9


def list_opportunities(client: Any, parent_names: list[str]) -> Opportunities:
    items: list[Opportunity] = []
    currencies = set()
    for parent in parent_names:
        recommender = parent.rsplit("/", 1)[1]
        for rec in client.list_recommendations(
            request={"parent": parent, "filter": "stateInfo.state = ACTIVE"}
        ):
            if rec.state_info.state.name != "ACTIVE":
                continue
            projection = rec.primary_impact.cost_projection
            cost = projection.cost
            duration = projection.duration or MONTH
            seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration.seconds)
            if not seconds:
                continue
            saving = -_money(int(cost.units), int(cost.nanos)) * MONTH.total_seconds() / seconds
            if saving <= 0:
                continue
            currencies.add(cost.currency_code or "USD")
            items.append(
                Opportunity(
                    recommender=recommender,
                    name=rec.name,
                    description=rec.description,
                    subtype=rec.recommender_subtype,
                    priority=rec.priority.name,
                    monthly_saving=round(saving, 2),
                    currency=cost.currency_code or "USD",
                )
            )
    items.sort(key=lambda o: -o.monthly_saving)
    if len(currencies) > 1:
        return Opportunities(items=items, total_monthly_saving=None, currency=None, note="several currencies")
    return Opportunities(
        items=items,
        total_monthly_saving=round(sum(o.monthly_saving for o in items), 2),
        currency=next(iter(currencies), None),
    )
