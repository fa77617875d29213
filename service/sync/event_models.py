"""The event contract as pydantic models: the source of the JSON Schema files (`schemas/events/`)
and of the AsyncAPI document (`kinds.py` maps each event type to its model). Events are built as
plain dicts on the hot path (`events.py`); the tests validate every produced event against these
schemas."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Alike service.amili.models.PostalAddress/Customer on purpose: those parse the API, these are the
# published event contract (own schema, extra fields allowed); one must not change with the other.
class PostalAddress(BaseModel):
    model_config = ConfigDict(extra="allow")
    addressLine1: str | None = None
    addressLine2: str | None = None
    addressLine3: str | None = None
    postalCode: str | None = None
    cityName: str | None = None
    countryText: str | None = None
    countryCode: str | None = None


class BalanceState(_Strict):
    balanceTotal: float | None


class AddressState(_Strict):
    postalAddress: PostalAddress | None


# One small model per event kind (alike in shape): each is its own schema in schemas/events/.
class RegistrationStatusState(_Strict):
    registrationStatusCode: str | None
    registrationStatusDate: str | None = Field(description="YYYY-MM-DD")


class CustomerState(BaseModel):
    """The tracked state of a customer (fields that are empty are left out)."""

    model_config = ConfigDict(extra="allow")
    accountNo: int | None = None
    currency: str | None = None
    name: str | None = None
    balanceTotal: float | None = None
    postalAddress: PostalAddress | None = None
    registrationStatusCode: str | None = None
    registrationStatusDate: str | None = None


class EventBase(_Strict):
    """The fields every change event's data carries."""

    clientNo: int
    customerNo: str
    accountNo: int | None
    requestId: UUID
    observedAt: datetime
    changedFields: list[str]


class BalanceChanged(EventBase):
    """`amili.customer.balance_changed.v1` on `…balance-changed`."""

    before: BalanceState
    after: BalanceState
    delta: float | None
    currency: str | None


class AddressChanged(EventBase):
    """`amili.customer.address_changed.v1` on `…address-changed`."""

    before: AddressState
    after: AddressState


class RegistrationStatusChanged(EventBase):
    """`amili.customer.registration_status_changed.v1` on `…registration-status-changed`."""

    before: RegistrationStatusState
    after: RegistrationStatusState


class CustomerCreated(EventBase):
    """`amili.customer.created.v1` on `…lifecycle`."""

    before: None
    after: CustomerState


class CustomerRemoved(EventBase):
    """`amili.customer.removed.v1` on `…lifecycle`: confirmed gone (GET one answered 404)."""

    before: CustomerState
    after: None


class CustomerBaseline(EventBase):
    """`amili.customer.baseline.v1` on `…lifecycle`: the first run for a client, one per customer."""

    before: None
    after: CustomerState
