"""Budget use, thresholds, variance against the pro-rated budget, and savings against the baseline.

Figures from the seeds (example configuration, all overridable): the budget cap is $3,000 a month,
the target $1,800; thresholds on actual spend at 50/90/100% of the cap and on forecast spend at
100% (GCP Budgets' own defaults); variance is flagged beyond 5%. The seeds' monthly baseline is
$2,460: Cloud Run 1,200, Cloud SQL 800, Redis 300, other 160 (shares 48.8 / 32.5 / 12.2 / 6.5%,
computed by :func:`baseline_shares`, not the 50/33/12/5 a seed prints).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

BASELINE: dict[str, Decimal] = {
    "Cloud Run": Decimal(1200),
    "Cloud SQL": Decimal(800),
    "Redis": Decimal(300),
    "Other": Decimal(160),
}

# Billing-export service descriptions per baseline line (anything else is "Other").
BASELINE_SERVICES: dict[str, str] = {
    "Cloud Run": "Cloud Run",
    "Cloud Run Functions": "Cloud Run",
    "Cloud Functions": "Cloud Run",
    "Cloud SQL": "Cloud SQL",
    "Cloud Memorystore for Redis": "Redis",
    "Memorystore for Redis": "Redis",
}

Kind = Literal["actual", "forecast"]


@dataclass(frozen=True)
class Threshold:
    kind: Kind
    percent: int

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.percent}"


DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("actual", 50),
    Threshold("actual", 90),
    Threshold("actual", 100),
    Threshold("forecast", 100),
)


class Crossing(BaseModel):
    month: str
    kind: Kind
    percent: int
    value_pct: float
    at: date
    source: str = "snapshot"
    severity: Literal["high", "medium"] = "medium"

    @property
    def key(self) -> str:
        return f"{self.month}/{self.kind}-{self.percent}"


def crossing_severity(threshold: Threshold) -> Literal["high", "medium"]:
    """High at 100% actual or forecast (the cap is about to be, or has been, passed)."""
    return "high" if threshold.percent >= 100 else "medium"


def crossed(
    used_pct: float, forecast_pct: float, thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS
) -> list[Threshold]:
    """The thresholds at or above which spend stands now (whether or not already announced)."""
    out = []
    for t in thresholds:
        value = used_pct if t.kind == "actual" else forecast_pct
        if value >= t.percent:
            out.append(t)
    return out


def baseline_line(service: str) -> str:
    return BASELINE_SERVICES.get(service, "Other")


def baseline_shares() -> dict[str, float]:
    """Each baseline line's share of the $2,460 total, in percent (one decimal)."""
    total = sum(BASELINE.values())
    return {name: round(float(value / total * 100), 1) for name, value in BASELINE.items()}


def pct(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole * 100


def prorated(amount: float, days_elapsed: int, days_in_month: int) -> float:
    return amount * days_elapsed / days_in_month


# The snapshot's own budget (ION_COST_BUDGET) when no GCP budget of the same amount has spoken
# this month; otherwise it announces under that budget's id, so one crossing is announced once.
CONFIGURED_BUDGET = "configured"


def crossing_key(month: str, budget_id: str, threshold: str) -> str:
    """``crossing/YYYY-MM/<budget id>/<kind>-<percent>``: once per month *per budget*. A billing
    account can have several budgets publishing to the topic; without the id, another budget's
    50% would take (and silence) ours."""
    return f"crossing/{month}/{budget_id}/{threshold}"


def legacy_crossing_key(month: str, threshold: str) -> str:
    """The key before budget ids (``crossing/YYYY-MM/actual-90``). Migration: a crossing already
    announced under it is not announced again under the new key in the same month; such keys
    expire with their month, so the check can go once a month has passed since the deploy."""
    return f"crossing/{month}/{threshold}"
