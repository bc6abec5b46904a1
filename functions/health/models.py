"""The health capability's boundary models: customers, keys and imported events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.compat import known_fields
from shared.customer_keys import CUSTOMER_ID_PATTERN
from shared.ids import DocumentId

# Validation context of an event read back from the store: its date is not checked against today,
# and fields a newer version added are ignored (``shared/compat.py``).
STORED = "stored"

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


def _email_alone(value: Any) -> Any:
    # A bare string is the success manager's email address.
    return {"email": value} if isinstance(value, str) else value


def _stored_contact(value: Any) -> Any:
    # Read back from the store: a field a newer version added to the contact is not this one's to
    # refuse (the public edge refuses it in a request; here it failed every read of the customer).
    value = _email_alone(value)
    return known_fields(Contact, value) if isinstance(value, dict) else value


def _not_in_future(value: datetime | None) -> datetime | None:
    """A date that has happened (a day's slack for clocks and zones), in UTC, and one Firestore can
    keep: an instant of the years 1 to 9999 in UTC (``0001-01-01T00:30:00+01:00`` is not: it was a
    500 when stored)."""
    from shared.clock import utcnow

    if value is None:
        return value
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be an instant of the years 0001 to 9999 in UTC") from None
    if instant > utcnow() + timedelta(days=1):
        raise ValueError("must not be in the future")
    return instant  # in UTC, as Firestore gives it back: every answer names the same instant alike


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CustomerId
    name: str = Field(min_length=1, max_length=200)
    plan: str | None = Field(default=None, max_length=50)
    segment: str | None = Field(default=None, max_length=50)
    contact: Contact | None = None
    # Imported customers keep their real history: without it every import looks new (and gets
    # an onboarding check-in the next day). Unset: now.
    created_at: AwareDatetime | None = Field(
        default=None, description="when the customer started (default: now); an import sets it"
    )
    first_value_at: AwareDatetime | None = Field(
        default=None, description="when the customer first got value from ION (shown, never inferred)"
    )

    contact_as_email = field_validator("contact", mode="before")(_email_alone)
    dates_not_future = field_validator("created_at", "first_value_at")(_not_in_future)


# What PATCH /v1/customers/{id} may change (the id never changes; status by deactivate/reactivate).
PATCHABLE = ("name", "plan", "segment", "contact", "created_at", "first_value_at")


class CustomerPatch(BaseModel):
    """Fields to change; a field left out is kept, ``null`` clears it (not ``name``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: str | None = Field(default=None, max_length=50)
    segment: str | None = Field(default=None, max_length=50)
    contact: Contact | None = Field(
        default=None, description="the success manager (CSM): name, email, slack; replaces the stored one"
    )
    created_at: AwareDatetime | None = None
    first_value_at: AwareDatetime | None = None

    contact_as_email = field_validator("contact", mode="before")(_email_alone)
    dates_not_future = field_validator("created_at", "first_value_at")(_not_in_future)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in PATCHABLE)
            if unknown:
                raise ValueError(
                    f"cannot change {', '.join(unknown)}; a PATCH may change {', '.join(PATCHABLE)} "
                    "(status: POST .../deactivate or .../reactivate; the id never changes)"
                )
            if not data:
                raise ValueError(f"nothing to change; send one or more of {', '.join(PATCHABLE)}")
            if "name" in data and data["name"] is None:
                raise ValueError("name cannot be cleared (null); send a new name")
            if "created_at" in data and data["created_at"] is None:
                raise ValueError("created_at cannot be cleared (null); send when the customer started")
        return data

    def changes(self) -> dict[str, Any]:
        """The fields sent, as they are to be stored."""
        return self.model_dump(mode="python", include=self.model_fields_set)


class HealthSummary(BaseModel):
    """The latest score, kept on the customer for listing by category."""

    model_config = ConfigDict(extra="ignore")

    score: float | None = None
    category: str | None = None
    as_of: str | None = None


CustomerStatus = Literal["active", "inactive"]


class Customer(CustomerIn):
    model_config = ConfigDict(extra="ignore", frozen=True)

    created_at: datetime  # type: ignore[assignment]
    # inactive (deactivated): not scored, no action fires, its keys revoked; reactivation undoes
    # the first two (keys stay revoked: issue new ones).
    status: CustomerStatus = "active"
    deactivated_at: datetime | None = None
    updated_at: datetime | None = None
    health: HealthSummary | None = None

    # Stored dates are not checked against today's clock again (a test's clock may be earlier).
    dates_not_future = field_validator("created_at", "first_value_at")(lambda value: value)
    contact_as_email = field_validator("contact", mode="before")(_stored_contact)


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
    at: AwareDatetime = Field(description="when it happened (not in the future)")

    @model_validator(mode="before")
    @classmethod
    def _newer_fields_of_stored(cls, data: Any, info: ValidationInfo) -> Any:
        # An event read back from the store may carry fields a newer version added (an import
        # strict as ever refuses them in a request).
        if info.context and info.context.get(STORED) and isinstance(data, dict):
            return known_fields(cls, data)
        return data

    @field_validator("at")
    @classmethod
    def _happened(cls, value: datetime, info: ValidationInfo) -> datetime:
        # An event is a fact that has happened (a year-9999 one overflowed its expiry: a 500);
        # one read back from the store (context ``stored``) is not checked against today again.
        if info.context and info.context.get(STORED):
            return value
        return _not_in_future(value)  # type: ignore[return-value]


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
