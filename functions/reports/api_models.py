"""The reports API's contract: the path variables, query strings, bodies and answers of the
routes ``main.py`` declares (each model is a component of ``/openapi.json``, named after its
class)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.reports.panels import WINDOWS
from functions.reports.render import FORMATS
from shared.clock import iana_time_zone
from shared.ids import DocumentId

Format = Literal[FORMATS]  # type: ignore[valid-type]
Window = Literal[tuple(WINDOWS)]  # type: ignore[valid-type]
# Audience names and dashboard names are keys of their definitions; report runs are Firestore
# documents ``<audience>-<period>``: each checked as a document id before anything is looked up.
AudienceName = DocumentId(max_length=64, description="an audience name, e.g. engineering")
RunId = DocumentId(
    max_length=128, description="a report run id, <audience>-<period>, e.g. engineering-2026-W46"
)
PAGES = ("text/html", "application/json", "text/markdown", "text/plain")


class FormatQuery(BaseModel):
    format: Format | None = Field(default=None, description="the format (else chosen by Accept; html)")


class DashboardPath(BaseModel):
    name: DocumentId(max_length=64, description="a dashboard name, e.g. overview") = Field(  # type: ignore[valid-type]
        examples=["overview", "reliability"]
    )


class DashboardQuery(FormatQuery):
    window: Window = Field(default="1h", description="the time window charted")
    region: str | None = Field(default=None, max_length=64, description="one region (default: all)")
    tz: str = Field(
        default="UTC",
        max_length=64,
        pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$",
        description="the reader's IANA time zone for the times shown (charts, header, tables; the JSON "
        "stays UTC), default UTC, e.g. America/New_York",
    )

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            iana_time_zone(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IANA time zone (like America/New_York)") from None
        return value


class AudiencePath(BaseModel):
    # The cheapest report to build, sent by the contract test (then its archived copy is read).
    name: AudienceName = Field(examples=["support"])  # type: ignore[valid-type]


class RunPath(BaseModel):
    name: RunId  # type: ignore[valid-type]


class ArchiveQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500, description="reports listed, newest first, 1 to 500")
    audience: AudienceName | None = Field(  # type: ignore[valid-type]
        default=None, description="only this audience's reports (one of the audiences file's, else a 422)"
    )
    after: RunId | None = Field(  # type: ignore[valid-type]
        default=None, description="the `next` of the page before: reports after this one"
    )


class RunQuery(BaseModel):
    format: Literal["html", "json", "text"] = Field(default="html", description="the archived report as")


class ReportSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    url: str


class Mailed(BaseModel):
    id: str
    mailed: bool = Field(description="true when sent over SMTP (locally: written to the outbox)")
    delivery: str
    recipients: list[str]
    message_id: str | None
    period: dict[str, Any]
    status: str
    empty: bool
    size_bytes: int
    html_bytes: int
    images: int
    resend: int
    recorded: bool
    url: str


class AlreadyMailed(BaseModel):
    id: str
    mailed: Literal[False]
    reason: str
    url: str


class ReportList(BaseModel):
    reports: list[ReportSummary]
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null on the last (a full page may be followed "
        "by an empty one)",
    )


class ReportRequest(BaseModel):
    """Optional JSON body (the scheduler's jobs send one); query parameters say the same."""

    model_config = ConfigDict(extra="forbid")

    period: Literal["week", "month", "day"] | None = Field(
        default=None, description="week, month or day (the day so far); default: the audience's (week)"
    )
    week: str | None = Field(default=None, max_length=16, description="an ISO week, e.g. 2026-W46")
    month: str | None = Field(default=None, max_length=16, description="a month, e.g. 2026-11")
    day: str | None = Field(default=None, max_length=16, description="a local day, e.g. 2026-11-18")
    time_zone: str | None = Field(default=None, max_length=64, description="an IANA time zone")
    resend: bool = False
    partial: bool = Field(default=False, description="the current week so far (labelled partial)")


class ReportQuery(BaseModel):
    """The same parameters in the query string (each overrides the body's)."""

    period: Literal["week", "month", "day"] | None = None
    week: str | None = Field(default=None, max_length=16, description="an ISO week, e.g. 2026-W46")
    month: str | None = Field(default=None, max_length=16, description="a month, e.g. 2026-11")
    day: str | None = Field(default=None, max_length=16, description="a local day, e.g. 2026-11-18")
    time_zone: str | None = Field(default=None, max_length=64, description="an IANA time zone")
    resend: bool | None = Field(default=None, description="mail again a report already mailed")
    partial: bool | None = Field(default=None, description="the current week so far (labelled partial)")
