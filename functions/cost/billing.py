"""Raw rows of the Cloud Billing export (the standard usage cost table), validated at the boundary.

A row is what BigQuery answers for the export table, or one line of the CLI's JSON-lines file,
nested as in the export (``{"service": {"description": ...}, "location": {"region": ...}}``).
Money is :class:`~decimal.Decimal` from the text of the number, never a binary float, so sums are
exact to the cent however many rows there are. Net cost = ``cost`` + the (negative) credits.

:class:`BillingRow` is one raw row; the aggregated lines both sources feed the ledger with
(:class:`~functions.cost.cost_lines.CostLine`) are in :mod:`functions.cost.cost_lines`.

The CLI refuses a file with a bad row (:func:`parse_rows`, every bad row named): a total silently
missing a row is worse than none there. The file source reads leniently instead
(:func:`read_jsonl_rows`), setting a bad row aside to report it: one bad row must not stop every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.validation import validation_errors


class Described(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    description: str = Field(min_length=1)


class Location(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    location: str | None = None
    country: str | None = None
    region: str | None = None
    zone: str | None = None


class Credit(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = ""
    amount: Decimal
    type: str | None = None

    @field_validator("amount")
    @classmethod
    def _negative(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("credit amount must be a finite number")
        if value > 0:
            raise ValueError("credit amounts are negative in the export (a credit lowers the cost)")
        return value


class Invoice(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    month: str | None = Field(default=None, pattern=r"^\d{6}$")


class Project(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    name: str | None = None


# The export's cost_type values: usage is "regular"; the rest are invoice-level charges that must
# not be mixed into a service's daily usage (an anomaly on tax day is not an anomaly).
REGULAR = "regular"
TAX = "tax"


class Label(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    value: str | None = None


class BillingRow(BaseModel):
    """One row of the export. Unknown columns are ignored; the ones we use are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    service: Described
    sku: Described
    usage_start_time: datetime
    usage_end_time: datetime | None = None
    location: Location = Location()
    cost: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    credits: list[Credit] = []
    invoice: Invoice = Invoice()
    labels: list[Label] = []
    export_time: datetime | None = None
    project: Project = Project()
    # Absent in old extracts and hand-written files: those rows are usage.
    cost_type: str = REGULAR

    @field_validator("cost")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("cost must be a finite number")
        return value

    @field_validator("usage_start_time", "usage_end_time", "export_time", mode="before")
    @classmethod
    def _bigquery_text(cls, value: Any) -> Any:
        # BigQuery's JSON extracts write TIMESTAMP as "2026-11-01 00:00:00 UTC".
        if isinstance(value, str) and value.endswith(" UTC"):
            return value[: -len(" UTC")] + "+00:00"
        return value

    @field_validator("usage_start_time", "usage_end_time", "export_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # the export's TIMESTAMP columns are UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("credits", "labels", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("labels", mode="before")
    @classmethod
    def _label_map(cls, value: Any) -> Any:
        # The export writes labels as [{key, value}]; a {key: value} map means the same.
        if isinstance(value, Mapping):
            return [{"key": k, "value": v} for k, v in value.items()]
        return value

    @field_validator("location", "invoice", "project", mode="before")
    @classmethod
    def _null_record(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("cost_type", mode="before")
    @classmethod
    def _null_type(cls, value: Any) -> Any:
        return REGULAR if value is None else value

    @model_validator(mode="after")
    def _order(self) -> BillingRow:
        if self.usage_end_time is not None and self.usage_end_time < self.usage_start_time:
            raise ValueError("usage_end_time is before usage_start_time")
        return self

    @property
    def net_cost(self) -> Decimal:
        return self.cost + sum((c.amount for c in self.credits), Decimal(0))

    @property
    def credit_total(self) -> Decimal:
        return sum((c.amount for c in self.credits), Decimal(0))

    @property
    def usage_date(self) -> date:
        """The UTC date; the ledger uses :meth:`usage_day` in the billing account's zone."""
        return self.usage_start_time.date()

    def usage_day(self, zone: ZoneInfo) -> date:
        return self.usage_start_time.astimezone(zone).date()

    @property
    def region(self) -> str:
        return self.location.region or self.location.location or "global"

    def label(self, key: str) -> str | None:
        return next((item.value for item in self.labels if item.key == key), None)


class RowError(BaseModel):
    row: int = Field(description="1-based row (line) number in the input")
    errors: list[dict[str, Any]]

    def describe(self) -> str:
        parts = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
        return f"row {self.row}: {parts}"


class BadRows(ValueError):
    """Rows that could not be read; nothing was summed."""

    def __init__(self, rejected: list[RowError], total: int) -> None:
        self.rejected = rejected
        self.total = total
        shown = "\n".join(r.describe() for r in rejected[:20])
        more = f"\n... and {len(rejected) - 20} more" if len(rejected) > 20 else ""
        super().__init__(f"{len(rejected)} of {total} billing rows rejected:\n{shown}{more}")


def _decimal_number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - json only hands over valid numbers
        raise ValueError(text) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_rows(raw_rows: Iterable[tuple[int, Any]], *, currency: str | None = None) -> list[BillingRow]:
    """Validate ``(row number, mapping)`` pairs; raise :class:`BadRows` naming every bad row.

    All rows must share one currency (a billing account bills in one); ``currency`` fixes it.
    """
    rows: list[BillingRow] = []
    rejected: list[RowError] = []
    total = 0
    expected = currency
    for number, raw in raw_rows:
        total += 1
        if not isinstance(raw, Mapping):
            rejected.append(
                RowError(
                    row=number, errors=[{"field": "row", "message": "not a JSON object", "type": "type"}]
                )
            )
            continue
        try:
            row = BillingRow.model_validate(raw)
        except ValidationError as exc:
            rejected.append(RowError(row=number, errors=validation_errors(exc)))
            continue
        if expected is None:
            expected = row.currency
        elif row.currency != expected:
            rejected.append(
                RowError(
                    row=number,
                    errors=[
                        {
                            "field": "currency",
                            "message": f"{row.currency} differs from {expected}: one billing account "
                            "bills in one currency, and sums across currencies mean nothing",
                            "type": "currency_mismatch",
                        }
                    ],
                )
            )
            continue
        rows.append(row)
    if rejected:
        raise BadRows(rejected, total)
    return rows


def read_jsonl(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` per non-blank line; numbers as Decimal; unparseable lines as None."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line, parse_float=_decimal_number, parse_constant=_reject_constant)
        except ValueError as exc:
            yield number, _Unparsed(str(exc))


class _Unparsed(str):
    """A line that is not JSON; ``parse_rows`` rejects it as not being an object."""


def load_jsonl(path: str, *, currency: str | None = None) -> list[BillingRow]:
    with open(path, encoding="utf-8") as handle:
        pairs = list(read_jsonl(handle))
    rejected = [
        RowError(
            row=n, errors=[{"field": "row", "message": f"not valid JSON ({raw})", "type": "json_invalid"}]
        )
        for n, raw in pairs
        if isinstance(raw, _Unparsed)
    ]
    good = [(n, raw) for n, raw in pairs if not isinstance(raw, _Unparsed)]
    try:
        rows = parse_rows(good, currency=currency)
    except BadRows as exc:
        raise BadRows(sorted([*rejected, *exc.rejected], key=lambda r: r.row), len(pairs)) from None
    if rejected:
        raise BadRows(rejected, len(pairs))
    return rows


def read_jsonl_rows(path: str) -> tuple[list[BillingRow], list[RowError], int]:
    """Raw rows of a JSON-lines file, leniently: the good rows, the bad ones with why, the count."""
    with open(path, encoding="utf-8") as handle:
        pairs = list(read_jsonl(handle))
    good: list[BillingRow] = []
    rejected: list[RowError] = []
    for number, raw in pairs:
        if isinstance(raw, _Unparsed):
            rejected.append(
                RowError(
                    row=number,
                    errors=[{"field": "row", "message": f"not valid JSON ({raw})", "type": "json_invalid"}],
                )
            )
            continue
        try:
            (row,) = parse_rows([(number, raw)])
        except BadRows as exc:
            rejected.extend(exc.rejected)
            continue
        good.append(row)
    return good, rejected, len(pairs)
