"""GCP Budget notifications (the programmatic notifications of Cloud Billing budgets), taken from
a push subscription on the ``budget-notifications`` topic.

The documented payload (schema version 1.0): a JSON body with ``budgetDisplayName``,
``costAmount``, ``costIntervalStart``, ``budgetAmount``, ``budgetAmountType``, ``currencyCode``
and, once a threshold is passed, ``alertThresholdExceeded`` (actual) or
``forecastThresholdExceeded`` (forecast) as fractions (0.9 = 90%); attributes
``billingAccountId``, ``budgetId`` and ``schemaVersion``. Budgets send one several times a day,
with or without a threshold.

Each message is handled once (idempotency marker on its message id); the latest figures per budget
and month are kept (the daily snapshot reconciles them with the export); a threshold exceeded is
announced once per month and budget (``crossing/YYYY-MM/<budgetId>/actual-90``): a billing
account may have several budgets on the topic, and one must not silence another. The daily
snapshot announces its own budget (ION_COST_BUDGET) under the id of the GCP budget of the same
amount and currency when one has reported this month, else as ``configured``; a budget
notification of that amount and currency finds a ``configured`` crossing already published and
stays quiet. So whichever source sees the crossing of ION's budget first announces it, once.

Migration (keys stored before budget ids, ``crossing/YYYY-MM/actual-90``): a crossing published
under the old key is not announced again under a new one in the same month
(:func:`~functions.cost.budget.legacy_crossing_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.cost.budget import (
    CONFIGURED_BUDGET,
    Threshold,
    crossing_key,
    crossing_severity,
    legacy_crossing_key,
)
from functions.cost.store import CostStore
from shared.logging import get_logger
from shared.messages import AlertTransition
from shared.notices import notice_transition

log = get_logger("cost.budget")
SUPPORTED_SCHEMA = "1.0"


class BudgetAttributes(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    billingAccountId: str = Field(min_length=1)
    budgetId: str = Field(min_length=1)
    schemaVersion: Literal["1.0"]


class BudgetNotification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    budgetDisplayName: str
    costAmount: Decimal
    costIntervalStart: datetime
    budgetAmount: Decimal
    budgetAmountType: str | None = None
    currencyCode: str = Field(pattern=r"^[A-Z]{3}$")
    alertThresholdExceeded: float | None = Field(default=None, ge=0)
    forecastThresholdExceeded: float | None = Field(default=None, ge=0)

    def month(self) -> str:
        # The interval starts at midnight in the billing account's time zone (UTC-12..UTC+14):
        # 14 hours later it is that month's first day everywhere.
        return (self.costIntervalStart + timedelta(hours=14)).strftime("%Y-%m")


def parse(attributes: dict[str, str], data: bytes) -> tuple[BudgetAttributes, BudgetNotification] | str:
    """The typed message, or why it cannot be used (the caller drops it)."""
    try:
        attrs = BudgetAttributes.model_validate(attributes)
    except ValidationError as exc:
        return f"attributes: {exc.errors(include_url=False, include_input=False)}"
    try:
        body = BudgetNotification.model_validate_json(data)
    except ValidationError as exc:
        return f"body: {exc.errors(include_url=False, include_input=False)}"
    return attrs, body


def record(
    attrs: BudgetAttributes,
    body: BudgetNotification,
    *,
    message_id: str,
    published_at: datetime,
    store: CostStore,
    publish: Callable[[AlertTransition], Any],
    now: datetime,
    dashboard_url: str | None = None,
) -> list[str]:
    """Keep the figures and announce an exceeded threshold once per month (linking to
    ``dashboard_url``); the keys announced."""
    month = body.month()
    store.put_budget_notification(
        f"{attrs.budgetId}/{month}",
        {
            "budget_id": attrs.budgetId,
            "billing_account_id": attrs.billingAccountId,
            "name": body.budgetDisplayName,
            "month": month,
            "cost": str(body.costAmount),
            "budget": str(body.budgetAmount),
            "currency": body.currencyCode,
            "alert_threshold_exceeded": body.alertThresholdExceeded,
            "forecast_threshold_exceeded": body.forecastThresholdExceeded,
            "message_id": message_id,
            "published_at": published_at,
        },
    )
    announced = []
    for kind, fraction in (
        ("actual", body.alertThresholdExceeded),
        ("forecast", body.forecastThresholdExceeded),
    ):
        if fraction is None:
            continue
        threshold = Threshold(kind, round(fraction * 100))  # type: ignore[arg-type]
        key = crossing_key(month, attrs.budgetId, threshold.key)
        if store.published_event(legacy_crossing_key(month, threshold.key)):
            continue  # announced before the key had a budget id (migration)
        snapshot = store.published_event(crossing_key(month, CONFIGURED_BUDGET, threshold.key))
        if snapshot is not None and _same_amount(snapshot, body.budgetAmount, body.currencyCode):
            continue  # this is ION's budget, and the daily snapshot announced it first
        severity = crossing_severity(threshold)
        used = float(body.costAmount / body.budgetAmount * 100) if body.budgetAmount else 0.0
        # A budget sends its actual cost only: a forecast crossing has no forecast figure to
        # show, and the actual share is not it (54% "against" a 100% forecast threshold).
        value = used if kind == "actual" else None
        claim = {
            "kind": "crossing",
            "date": published_at.date().isoformat(),
            "month": month,
            "threshold": threshold.key,
            "budget_id": attrs.budgetId,
            "value_pct": value,
            "actual_pct": used,
            "severity": severity,
            "source": f"budget {attrs.budgetId}",
        }
        if kind == "actual":
            said = (
                f"actual cost passed {threshold.percent}% ({body.costAmount} of {body.budgetAmount} "
                f"{body.currencyCode})"
            )
        else:
            said = (
                f"forecast cost passed {threshold.percent}% of {body.budgetAmount} {body.currencyCode} "
                f"(actual so far {body.costAmount} {body.currencyCode} ({used:.1f}%))"
            )
        if not store.claim_event(key, claim):
            continue
        publish(
            notice_transition(
                notice_id=f"cost/{key}",
                source="cost",
                name="budget-threshold",
                severity=severity,
                summary=f"Budget '{body.budgetDisplayName}': {said} for {month}",
                at=now,
                labels={"month": month, "threshold": threshold.key, "budget_id": attrs.budgetId},
                annotations={"budget_id": attrs.budgetId, "billing_account_id": attrs.billingAccountId},
                value=value,
                threshold=float(threshold.percent),
                metric="cost.budget.used_pct" if kind == "actual" else "cost.budget.forecast_pct",
                dashboard_url=dashboard_url,
            )
        )
        store.mark_published(key)
        announced.append(key)
    return announced


def _same_amount(claim: dict[str, Any], amount: Decimal, currency: str) -> bool:
    try:
        return Decimal(str(claim.get("budget_amount"))) == amount and claim.get("currency") == currency
    except ArithmeticError:
        return False


def same_budget(
    notifications: list[dict[str, Any]], month: str, amount: float, currency: str
) -> dict[str, Any] | None:
    """The stored notification of ``month`` from the GCP budget of this amount and currency (the
    one Terraform makes from the same variables), the latest if several; None if none spoke."""
    target = Decimal(str(amount))
    found = [
        n
        for n in notifications
        if n.get("month") == month
        and n.get("currency") == currency
        and Decimal(str(n.get("budget"))) == target
    ]
    return max(found, key=lambda n: str(n.get("published_at")), default=None)
