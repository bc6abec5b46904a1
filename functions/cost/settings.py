"""Settings of the cost capability, read from the environment once per process.

Deployed (``K_SERVICE`` set) the function needs the billing export table; without it it refuses
to start naming the variable. Locally, without a table, it reads the billing file named by
``ION_COST_BILLING_FILE`` (labelled as a local fallback in every snapshot) or has no billing
source at all (``/health`` says so and the snapshot run answers 503). The export table needs
``ION_COST_PROJECTS`` (deployed: refused at start; locally: the run answers 503 naming it).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import iana_time_zone

DEFAULT_PRICES_FILE = Path(__file__).resolve().parent / "prices.yaml"


class MissingSetting(RuntimeError):
    """A deployed function lacks a setting it needs."""


class CostSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # The Cloud Billing export table, ``project.dataset.gcp_billing_export_v1_XXXXXX``.
    billing_table: str | None = Field(default=None, validation_alias="ION_COST_BILLING_TABLE")
    # The BigQuery REST endpoint; set locally to the stand-in (devtools/bigquery_standin.py).
    bigquery_endpoint: str | None = Field(default=None, validation_alias="ION_COST_BIGQUERY_ENDPOINT")
    bigquery_location: str | None = Field(default=None, validation_alias="ION_COST_BIGQUERY_LOCATION")
    # The project query jobs run in (bigquery.jobs.create there); unset: the export table's project.
    bigquery_project: str | None = Field(default=None, validation_alias="ION_COST_BIGQUERY_PROJECT")
    # Local fallback: a JSON-lines billing export (the CLI's file form).
    billing_file: str | None = Field(default=None, validation_alias="ION_COST_BILLING_FILE")
    # The projects whose cost is ION's (comma-separated ids): the export holds every project the
    # billing account pays for. Required with the export table; Terraform passes ION Ops' project
    # and the serving project.
    projects: str | None = Field(default=None, validation_alias="ION_COST_PROJECTS")
    # The billing account's time zone: invoices and Budgets count days and months in Pacific time.
    time_zone: str = Field(default="America/Los_Angeles", validation_alias="ION_COST_TIME_ZONE")

    # The currency budgets are set in; an export in another currency is refused, not mixed.
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", validation_alias="ION_COST_CURRENCY")
    budget: float = Field(default=3000.0, gt=0, validation_alias="ION_COST_BUDGET")
    target: float = Field(default=1800.0, gt=0, validation_alias="ION_COST_TARGET")
    window_days: int = Field(default=35, ge=7, le=90, validation_alias="ION_COST_WINDOW_DAYS")
    restate_days: int = Field(default=3, ge=1, le=14, validation_alias="ION_COST_RESTATE_DAYS")
    keep_days: int = Field(default=400, ge=35, validation_alias="ION_COST_KEEP_DAYS")
    anomaly_min_change: float = Field(default=2.0, ge=0, validation_alias="ION_COST_ANOMALY_MIN_CHANGE")
    anomaly_z: float = Field(default=4.0, gt=0, validation_alias="ION_COST_ANOMALY_Z")

    # Recommender API (savings opportunities): on when deployed or when an endpoint is given.
    recommender_endpoint: str | None = Field(default=None, validation_alias="ION_COST_RECOMMENDER_ENDPOINT")
    recommender_project: str | None = Field(default=None, validation_alias="ION_COST_RECOMMENDER_PROJECT")
    recommender_locations: str = Field(
        default="us-central1,europe-west1,asia-southeast1", validation_alias="ION_COST_RECOMMENDER_LOCATIONS"
    )
    billing_account: str | None = Field(default=None, validation_alias="ION_COST_BILLING_ACCOUNT")

    prices_file: Path = Field(default=DEFAULT_PRICES_FILE, validation_alias="ION_COST_PRICES_FILE")
    # The label routing puts on its request metrics for the customer (issue 12); absent until then.
    customer_label: str = Field(default="customer", validation_alias="ION_COST_CUSTOMER_LABEL")
    routing_service: str = Field(default="routing", validation_alias="ION_COST_ROUTING_SERVICE")
    dashboard_url: str | None = Field(default=None, validation_alias="ION_COST_DASHBOARD_URL")

    @field_validator("billing_table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is not None and value.count(".") != 2:
            raise ValueError("ION_COST_BILLING_TABLE must be project.dataset.table")
        return value

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ids = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in ids if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", p)]
        if bad:
            raise ValueError(
                f"ION_COST_PROJECTS must be comma-separated project ids; not ids: {', '.join(bad)}"
            )
        return ",".join(ids) or None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            iana_time_zone(value)
        except ValueError:
            raise ValueError(f"ION_COST_TIME_ZONE {value!r} is not an IANA time zone") from None
        return value

    @property
    def project_list(self) -> list[str]:
        return self.projects.split(",") if self.projects else []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def recommender_enabled(self) -> bool:
        return bool(self.recommender_endpoint or os.environ.get("K_SERVICE"))

    def check_deployed(self) -> None:
        if os.environ.get("K_SERVICE") and not self.billing_table:
            raise MissingSetting(
                "ION_COST_BILLING_TABLE is not set: the deployed cost function reads the Cloud Billing "
                "export table (project.dataset.gcp_billing_export_v1_XXXXXX)"
            )


def deployment_problems(target: str) -> list[str]:
    """What a deployed cost function lacks, each naming its variable."""
    from shared.deployment import link_problems, load_settings, unset

    _, problems = load_settings(CostSettings)
    if target == "snapshot_cost":
        problems += unset(
            "ION_COST_BILLING_TABLE",
            "ION_COST_PROJECTS",
            "ION_COST_BIGQUERY_PROJECT",
            "ION_COST_BIGQUERY_LOCATION",
            "ION_COST_BILLING_ACCOUNT",
            "ION_COST_RECOMMENDER_PROJECT",
        )
    return problems + link_problems("ION_COST_DASHBOARD_URL")


def check_deployment(target: str) -> None:
    from shared.deployment import refuse_to_start

    refuse_to_start("cost", deployment_problems(target))


@lru_cache(maxsize=1)
def get_cost_settings() -> CostSettings:
    settings = CostSettings()
    settings.check_deployed()
    return settings
