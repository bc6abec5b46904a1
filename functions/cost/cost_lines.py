"""Aggregated cost lines: what the ledger sums, from either billing source.

A :class:`CostLine` is one row of the function's aggregated export query: a usage day (in the
billing account's time zone), invoice month, cost type, service, SKU, region and currency, with
cost and credits summed. The BigQuery source reads these (thousands a month, not the export's
millions); :func:`aggregate` makes the same lines from raw rows
(:class:`~functions.cost.billing.BillingRow`), so both sources feed one ledger.

The daily run sets a bad line aside (:func:`parse_lines`) and reports it in the snapshot: one bad
line must not stop every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.cost.billing import REGULAR, BillingRow, RowError
from shared.validation import validation_errors


class CostLine(BaseModel):
    """One aggregated line: what the export query answers per (usage day, invoice month, cost
    type, service, SKU, region, currency). ``cost`` and ``credits`` are exact sums."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    usage_day: date
    invoice_month: str | None = Field(default=None, pattern=r"^\d{6}$")
    cost_type: str = Field(default=REGULAR, min_length=1)
    service: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    region: str = Field(default="global", min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    cost: Decimal
    credits: Decimal = Decimal(0)
    rows: int = Field(default=1, ge=1)
    last_export: datetime | None = None
    # Where the line was read (1-based), to name it if it is set aside later; not a figure.
    number: int = Field(default=0, exclude=True)

    @field_validator("cost", "credits")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value

    @field_validator("credits")
    @classmethod
    def _credits_lower(cls, value: Decimal) -> Decimal:
        if value > 0:
            raise ValueError("credits sum to a positive amount; the export's credits are negative")
        return value

    @field_validator("credits", "cost_type", "region", mode="before")
    @classmethod
    def _null_default(cls, value: Any, info: Any) -> Any:
        # SUM over no credit is NULL in SQL; a NULL region or type is the export's "none".
        if value is None:
            return {"credits": Decimal(0), "cost_type": REGULAR, "region": "global"}[info.field_name]
        return value

    @field_validator("last_export", mode="before")
    @classmethod
    def _bigquery_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.endswith(" UTC"):
            return value[: -len(" UTC")] + "+00:00"
        return value

    @property
    def net_cost(self) -> Decimal:
        return self.cost + self.credits

    @property
    def month(self) -> str:
        """The invoice month as YYYY-MM (the usage day's month when the line has none)."""
        if self.invoice_month:
            return f"{self.invoice_month[:4]}-{self.invoice_month[4:]}"
        return self.usage_day.strftime("%Y-%m")


@dataclass
class Parsed:
    """Lines read, and the ones set aside with why (never summed, always reported)."""

    lines: list[CostLine] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    read: int = 0

    def reasons(self, limit: int = 5) -> list[str]:
        return [r.describe() for r in self.rejected[:limit]]


def parse_lines(raw_lines: Iterable[tuple[int, Any]]) -> Parsed:
    """Validate ``(line number, mapping)`` pairs; a bad one is set aside with its reason."""
    out = Parsed()
    for number, raw in raw_lines:
        out.read += 1
        if not isinstance(raw, Mapping):
            out.rejected.append(
                RowError(row=number, errors=[{"field": "row", "message": "not an object", "type": "type"}])
            )
            continue
        try:
            out.lines.append(CostLine.model_validate({**raw, "number": number}))
        except ValidationError as exc:
            out.rejected.append(RowError(row=number, errors=validation_errors(exc)))
    return out


def aggregate(
    rows: Iterable[BillingRow], zone: ZoneInfo, projects: Iterable[str] | None = None
) -> list[CostLine]:
    """The export query's grouping done in Python, for raw rows (the file source, the CLI):
    the same keys and sums, so both sources give the ledger the same lines. ``projects`` keeps
    only rows of those projects (None: every row)."""
    wanted = None if projects is None else set(projects)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if wanted is not None and row.project.id not in wanted:
            continue
        key = (
            row.usage_day(zone),
            row.invoice.month,
            row.cost_type,
            row.service.description,
            row.sku.description,
            row.region,
            row.currency,
        )
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = {"cost": Decimal(0), "credits": Decimal(0), "rows": 0, "last_export": None}
        acc["cost"] += row.cost
        acc["credits"] += row.credit_total
        acc["rows"] += 1
        if row.export_time is not None and (
            acc["last_export"] is None or row.export_time > acc["last_export"]
        ):
            acc["last_export"] = row.export_time
    # model_construct: the rows were validated one by one already, and a replay (the bench)
    # aggregates hundreds of times.
    return [
        CostLine.model_construct(
            usage_day=day,
            invoice_month=month,
            cost_type=cost_type,
            service=service,
            sku=sku,
            region=region,
            currency=currency,
            **acc,
        )
        for (day, month, cost_type, service, sku, region, currency), acc in sorted(
            groups.items(), key=lambda item: tuple(str(k) for k in item[0])
        )
    ]
