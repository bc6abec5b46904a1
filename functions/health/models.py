"""The health capability's boundary models: customers, keys and imported events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.ids import DocumentId

CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
# A customer id taken from a request (path, cursor): its shape and Firestore's id rules.
CustomerRef = DocumentId(
    max_length=48, pattern=CUSTOMER_ID_PATTERN, description=f"a customer id, matching {CUSTOMER_ID_PATTERN}"
)


class Contact(BaseModel):
    """The customer's success manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    slack: str | None = Field(default=None, max_length=100, description="Slack user or channel id")


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CustomerId
    name: str = Field(min_length=1, max_length=200)
    plan: str | None = Field(default=None, max_length=50)
    segment: str | None = Field(default=None, max_length=50)
    contact: Contact | None = None

    @field_validator("contact", mode="before")
    @classmethod
    def _email_alone(cls, value: Any) -> Any:
        # A bare string is the success manager's email address.
        return {"email": value} if isinstance(value, str) else value


class HealthSummary(BaseModel):
    """The latest score, kept on the customer for listing by category."""

    model_config = ConfigDict(extra="ignore")

    score: float | None = None
    category: str | None = None
    as_of: str | None = None


class Customer(CustomerIn):
    model_config = ConfigDict(extra="ignore", frozen=True)

    created_at: datetime
    health: HealthSummary | None = None


class KeyIssued(BaseModel):
    key_id: str
    api_key: str
    customer_id: str
    created_at: datetime
    note: str = "The key is shown once; only its SHA-256 is stored."


class KeyView(BaseModel):
    key_id: str
    customer_id: str
    created_at: datetime
    revoked_at: datetime | None = None
    # False: issued before keys were signed; routing refuses it outside a migration window, so
    # issue the customer a new key and revoke this one.
    signed: bool = False


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    at: AwareDatetime


class TicketEvent(_EventBase):
    """A support ticket's state as of ``at`` (the latest event per ticket counts)."""

    type: Literal["ticket"]
    ticket_id: str = Field(min_length=1, max_length=128)
    status: Literal["open", "closed"]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class PaymentEvent(_EventBase):
    """An invoice's payment state as of ``at`` (the latest event per invoice counts)."""

    type: Literal["payment"]
    invoice_id: str = Field(min_length=1, max_length=128)
    status: Literal["paid", "overdue", "failed"]
    amount: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    days_late: int = Field(default=0, ge=0, le=3650)


class NpsEvent(_EventBase):
    """One NPS survey answer (0-10)."""

    type: Literal["nps"]
    score: int = Field(ge=0, le=10)
    respondent: str | None = Field(default=None, max_length=200)


Event = Annotated[TicketEvent | PaymentEvent | NpsEvent, Field(discriminator="type")]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[Event] = Field(min_length=1)
