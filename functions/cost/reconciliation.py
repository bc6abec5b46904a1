"""The export's figures against the other accounts of the same cost: what each GCP Budget last
reported for the month, and each whole-day live estimate once its day is billed and settled.

Both are reported in the snapshot (``budget_reconciliation``, ``estimate_check``), never used to
change a figure: the export is the truth, these say how far the others are from it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from functions.cost.budget import pct
from functions.cost.budget_notifications import same_budget
from functions.cost.ledger import DayCost
from functions.cost.snapshot_models import Snapshot

ESTIMATE_CHECK_DAYS = 14


def reconcile_budgets(
    snapshot: Snapshot,
    month: str,
    notifications: list[dict[str, Any]],
    *,
    budget: float,
    currency: str,
) -> dict[str, Any]:
    """The export's month to date against what each GCP budget last said for the same month
    (its costAmount). A budget reports as of when it was sent and rows keep landing, so a
    small positive gap is expected; a large one says the budget and ION_COST_PROJECTS cover
    different projects, or rows are missing. ``budget`` and ``currency`` are the configured
    budget's, to mark the GCP budget that is the same one."""
    export_total = Decimal(str(snapshot.month_to_date.total))
    ours = same_budget(notifications, month, budget, currency)
    budgets = []
    for n in sorted((n for n in notifications if n.get("month") == month), key=lambda n: n["budget_id"]):
        cost = Decimal(str(n["cost"]))
        difference = export_total - cost
        published = n.get("published_at")
        budgets.append(
            {
                "budget_id": n["budget_id"],
                "name": n.get("name"),
                "budget_cost": float(cost),
                "budget_amount": float(Decimal(str(n["budget"]))),
                "currency": n.get("currency"),
                "reported_at": published.isoformat() if isinstance(published, datetime) else published,
                "difference": float(round(difference, 2)),
                "difference_pct": None if cost == 0 else round(float(difference / cost * 100), 2),
                "is_configured_budget": ours is not None and n["budget_id"] == ours["budget_id"],
            }
        )
    return {
        "month": month,
        "export_month_to_date": snapshot.month_to_date.total,
        "export_tax": snapshot.month_to_date.tax,
        "budgets": budgets,
        "note": None if budgets else f"no GCP Budget notification stored for {month}",
    }


def check_estimates(
    estimates: Mapping[date, dict[str, Any]], billed: Mapping[date, DayCost], settled_before: date
) -> dict[str, Any]:
    """Each stored whole-day live estimate against the billed day once it has landed (settled),
    per service: the estimate is usage x list prices, so it is compared with the billed cost
    before credits."""
    days = []
    errors: dict[str, list[float]] = {}
    for day, est in estimates.items():
        billed_day = billed.get(day)
        if not est.get("complete") or billed_day is None or day >= settled_before:
            continue
        per_service = {}
        for service, value in sorted(est["by_service"].items()):
            actual = float(billed_day.gross_by_service.get(service, 0))
            error = value - actual
            error_pct = pct(error, actual)
            per_service[service] = {
                "estimate": round(value, 2),
                "billed": round(actual, 2),
                "error": round(error, 2),
                "error_pct": None if error_pct is None else round(error_pct, 1),
            }
            if error_pct is not None:
                errors.setdefault(service, []).append(abs(error_pct))
        days.append({"date": day.isoformat(), "by_service": per_service})
    return {
        "days": days,
        "mean_abs_error_pct": {k: round(statistics.fmean(v), 1) for k, v in sorted(errors.items())},
        "basis": "whole-day live estimate (usage x list prices) against the billed cost before credits",
        "note": None if days else "no whole-day estimate of a settled day yet",
    }
