"""The cost snapshot of one day as stored and printed: its shape, every figure rounded to show.

What the CLI prints and the ``snapshot_cost`` function stores (the function adds its own keys to
the dumped document); built by :func:`functions.cost.snapshot_build.build_snapshot`.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class DailyEntry(BaseModel):
    date: date
    total: float = Field(description="usage (cost type regular), net of credits")
    credits: float
    by_service: dict[str, float]
    charges: dict[str, float] = Field(
        default_factory=dict, description="tax, adjustment, rounding error: apart from usage"
    )


class MonthToDate(BaseModel):
    month: str
    days: int
    total: float = Field(description="usage + adjustments + rounding, before tax: what budgets count")
    usage: float = Field(description="cost type regular, net of credits: the sum of by_service")
    charges: dict[str, float] = Field(
        default_factory=dict, description="net per non-usage cost type (tax, adjustment, rounding error)"
    )
    tax: float = 0.0
    invoice_total: float = Field(description="total + tax")
    gross: float
    credits: float
    by_service: dict[str, float]
    by_region: dict[str, float]
    by_sku_group: dict[str, dict[str, float]]


class ForecastOut(BaseModel):
    total: float
    low: float
    high: float
    by_service: dict[str, float]
    fixed_remaining: float
    usage_remaining: float
    method: str


class BudgetOut(BaseModel):
    amount: float
    used_pct: float
    forecast_pct: float
    target: float
    target_used_pct: float
    target_forecast_pct: float
    prorated: float
    variance: float
    variance_pct: float | None
    variance_flag: bool
    target_prorated: float
    target_variance_pct: float | None
    target_variance_flag: bool
    crossed: list[str]


class SkuMoveOut(BaseModel):
    sku: str
    cost: float
    expected: float


class AnomalyOut(BaseModel):
    date: date
    service: str
    cost: float
    expected: float
    threshold: float
    weeks: int
    skus: list[SkuMoveOut]


class SavingsLine(BaseModel):
    baseline: float
    forecast: float
    saving: float
    saving_pct: float


class Savings(BaseModel):
    baseline_total: float
    forecast_total: float
    saving: float
    saving_pct: float
    target_gap: float = Field(
        description="forecast minus target: what is still to save (negative: below target)"
    )
    by_line: dict[str, SavingsLine]


class Snapshot(BaseModel):
    as_of: date
    currency: str
    time_zone: str = Field(default="UTC", description="the zone of every day and month here")
    month_to_date: MonthToDate
    forecast_month_end: ForecastOut
    budget: BudgetOut
    daily: list[DailyEntry]
    anomalies: list[AnomalyOut]
    savings: Savings
    rows: int
