"""The tolerant reading of the API's JSON (pydantic): the reference for what is accepted, and how.

`parsing` decodes every body strictly first (msgspec, into the structs of `models`); only a body the
strict decoder refuses comes here: one whose values need the tolerance described in `models` (`""`
for an empty number or date, a number where a string belongs, unknown fields), or one that is bad,
for which these models name the field in the error. Whatever is accepted is turned into the same
structs, so the rest of the service sees one type whichever way a page went.

The fields here and in `models` are the same (a test checks it); so are the bounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from . import models
from .models import CUSTOMER_NO_PATTERN, INT64_MAX, INT64_MIN, MAX_LIST_ITEMS, MAX_TEXT_CHARS, summary_problem


def _none(_value: object) -> None:
    return None


if TYPE_CHECKING:  # what the attributes hold after validation
    OptDate = str | None
    OptInt = int | None
    OptFloat = float | None
    Count = int | None
    CustomerNo = str
    StrList = list[str] | None
else:  # "" is accepted as an empty value; the Python validator runs only for "" (left-to-right union)
    _Empty = Annotated[Literal[""], AfterValidator(_none)]
    _Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
    OptDate = Annotated[_Empty | str | None, Field(union_mode="left_to_right")]
    OptInt = Annotated[_Int64 | _Empty | None, Field(union_mode="left_to_right")]
    OptFloat = Annotated[float | _Empty | None, Field(union_mode="left_to_right")]
    Count = Annotated[
        Annotated[int, Field(ge=0, le=INT64_MAX)] | _Empty | None, Field(union_mode="left_to_right")
    ]
    CustomerNo = Annotated[str, Field(pattern=CUSTOMER_NO_PATTERN)]
    StrList = Annotated[list[str], Field(max_length=MAX_LIST_ITEMS)] | None


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        populate_by_name=True,
        allow_inf_nan=False,
        str_max_length=MAX_TEXT_CHARS,
    )


class PostalAddress(_ApiModel):
    addressLine1: str | None = None
    addressLine2: str | None = None
    addressLine3: str | None = None
    postalCode: str | None = None
    cityName: str | None = None
    countryText: str | None = None
    countryCode: str | None = None


class Distribution(_ApiModel):
    type: str | None = None
    einvoiceCode: OptInt = None
    peppolEndpointId: str | None = None
    peppolEndpointIdScheme: str | None = None


class Customer(_ApiModel):
    """One ARM customer, as the list and GET-one endpoints return it."""

    # One declared field per API field: alike in shape by nature.
    customerNo: CustomerNo
    clientNo: OptInt = None
    accountNo: OptInt = None
    name: str | None = None
    informalName: str | None = None
    customerGroupCode: str | None = None
    customerCategory: str | None = None
    registrationStatusCode: str | None = None
    registrationStatusDate: OptDate = None
    activeStatusWeb: str | None = None
    organizationNo: str | None = None
    organizationNoScheme: str | None = None
    ssn: str | None = Field(None, repr=False)  # personal: kept out of repr()
    ssnCountry: str | None = None
    dateOfBirth: OptDate = Field(None, repr=False)
    yearOfBirth: OptInt = None
    phoneNo: str | None = None
    secondaryPhoneNo: str | None = None
    emailAddressDocument: StrList = None
    secondaryEmailAddress: StrList = None
    postalAddress: PostalAddress | None = None
    postalAddressChanged: OptDate = None
    postalReturnStatus: OptInt = None
    postalReturnDate: OptDate = None
    priceNetOrGross: str | None = None
    language: str | None = None
    usingLanguage: str | None = None
    currency: str | None = None
    sellerReference: str | None = None
    buyerReference: str | None = None
    bankAccountNo: str | None = None
    dueDays: OptInt = None
    vatLiable: bool | None = None
    discountRate: OptFloat = None
    limitAmount: OptFloat = None
    customerMessage: str | None = None
    stopReminderUntil: OptDate = None
    stopDebtCollectionUntil: OptDate = None
    stopInterestCalcUntil: OptDate = None
    distribution: Distribution | None = None
    efakturaBlockIds: StrList = None
    peppolBlockIds: StrList = None
    digipostBlockIds: StrList = None
    arRules: StrList = None
    naceCodes: StrList = None
    districtCodes: StrList = None
    parentCustomerNo: str | None = None
    parentOrganizationNo: str | None = None
    customerKid: str | None = None
    balanceTotal: OptFloat = None


class Summary(_ApiModel):
    pageNo: Count = None
    currentPageSize: Count = None
    pageSizeLimit: Count = None
    totalPages: Count = None
    totalCount: Count = None
    maximumCount: Count = None
    nextPage: str | None = None
    lastPage: str | None = None
    queryId: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Summary:
        problem = summary_problem(self.pageSizeLimit, self.totalPages, self.totalCount, self.currentPageSize)
        if problem is not None:
            raise ValueError(problem)
        return self


class CustomerList(_ApiModel):
    summary: Summary
    customers: list[Customer] = Field(default_factory=list)


# --- into the structs of `models` ------------------------------------------------------------------


def _extra(model: BaseModel) -> dict[str, Any] | None:
    return model.__pydantic_extra__ or None


def to_customer(model: Customer) -> models.Customer:
    values = dict(model.__dict__)
    address, distribution = model.postalAddress, model.distribution
    if address is not None:
        values["postalAddress"] = models.PostalAddress(**address.__dict__, model_extra=_extra(address))
    if distribution is not None:
        values["distribution"] = models.Distribution(
            **distribution.__dict__, model_extra=_extra(distribution)
        )
    return models.Customer(**values, model_extra=_extra(model))


def to_customer_list(model: CustomerList) -> models.CustomerList:
    return models.CustomerList(
        summary=models.Summary(**model.summary.__dict__),
        customers=[to_customer(c) for c in model.customers],
    )
