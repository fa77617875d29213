"""The event contract as pydantic models: the source of the JSON Schema files (`schemas/events/`)
and of the AsyncAPI document. Events are built as plain dicts on the hot path (`events.py`); the
tests validate every produced event against these schemas."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class _EventBase(_Strict):
    clientNo: int
    customerNo: str
    accountNo: int | None
    requestId: UUID
    observedAt: datetime
    changedFields: list[str]


class BalanceChanged(_EventBase):
    """`amili.customer.balance_changed.v1` on `…balance-changed`."""

    before: BalanceState
    after: BalanceState
    delta: float | None
    currency: str | None


class AddressChanged(_EventBase):
    """`amili.customer.address_changed.v1` on `…address-changed`."""

    before: AddressState
    after: AddressState


class RegistrationStatusChanged(_EventBase):
    """`amili.customer.registration_status_changed.v1` on `…registration-status-changed`."""

    before: RegistrationStatusState
    after: RegistrationStatusState


class CustomerCreated(_EventBase):
    """`amili.customer.created.v1` on `…lifecycle`."""

    before: None
    after: CustomerState


class CustomerRemoved(_EventBase):
    """`amili.customer.removed.v1` on `…lifecycle`: confirmed gone (GET one answered 404)."""

    before: CustomerState
    after: None


class CustomerBaseline(_EventBase):
    """`amili.customer.baseline.v1` on `…lifecycle`: the first run for a client, one per customer."""

    before: None
    after: CustomerState


EVENT_MODELS: dict[str, type[BaseModel]] = {
    "amili.customer.balance_changed.v1": BalanceChanged,
    "amili.customer.address_changed.v1": AddressChanged,
    "amili.customer.registration_status_changed.v1": RegistrationStatusChanged,
    "amili.customer.created.v1": CustomerCreated,
    "amili.customer.removed.v1": CustomerRemoved,
    "amili.customer.baseline.v1": CustomerBaseline,
}


def json_schema(event_type: str) -> dict[str, object]:
    schema = EVENT_MODELS[event_type].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{event_type}.json"
    return schema
