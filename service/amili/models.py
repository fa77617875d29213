"""Customer models (pydantic) and the read report.

Parsing is tolerant, because the docs do not say whether empty fields are left out, sent as `null`
or as `""` (`docs/amili-api.md`):

- every field but `customerNo` is optional and defaults to None;
- unknown fields are kept (`extra="allow"`): they are in `model_extra` and in `model_dump()`;
- for dates, whole numbers and amounts, `""` reads as None (other string fields keep `""` as sent);
- dates (`YYYY-MM-DD` in the API) are kept as the strings sent, not parsed: one odd date must not
  fail a page of a thousand customers, and the values stay JSON-native for the diff and the
  snapshot (`""` reads as None there too); amounts and rates (`balanceTotal`,
  `limitAmount`, `discountRate`) are floats: a JSON number round-trips exactly through a float's
  shortest repr, but compute money deltas with `Decimal(str(x))`, not with float arithmetic;
- `customerNo` (and any other string field) also accepts a JSON number and keeps it as a string.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _none(_value: object) -> None:
    return None


if TYPE_CHECKING:  # what the attributes hold after validation
    OptDate = str | None
    OptInt = int | None
    OptFloat = float | None
else:  # "" is accepted as an empty value; the Python validator runs only for "" (left-to-right union)
    _Empty = Annotated[Literal[""], AfterValidator(_none)]
    OptDate = Annotated[_Empty | str | None, Field(union_mode="left_to_right")]
    OptInt = Annotated[int | _Empty | None, Field(union_mode="left_to_right")]
    OptFloat = Annotated[float | _Empty | None, Field(union_mode="left_to_right")]


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


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

    customerNo: str
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
    emailAddressDocument: list[str] | None = None
    secondaryEmailAddress: list[str] | None = None
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
    efakturaBlockIds: list[str] | None = None
    peppolBlockIds: list[str] | None = None
    digipostBlockIds: list[str] | None = None
    arRules: list[str] | None = None
    naceCodes: list[str] | None = None
    districtCodes: list[str] | None = None
    parentCustomerNo: str | None = None
    parentOrganizationNo: str | None = None
    customerKid: str | None = None
    balanceTotal: OptFloat = None


class Summary(_ApiModel):
    """The `summary` object of a list response. Missing numbers are treated as protocol errors by the
    reader where it needs them; `nextPage` may be absent, null or empty (the reader never follows it)."""

    pageNo: OptInt = None
    currentPageSize: OptInt = None
    pageSizeLimit: OptInt = None
    totalPages: OptInt = None
    totalCount: OptInt = None
    maximumCount: OptInt = None
    nextPage: str | None = None
    lastPage: str | None = None
    queryId: str | None = None


class CustomerList(_ApiModel):
    """A whole list response: `{"summary": {...}, "customers": [...]}`."""

    summary: Summary
    customers: list[Customer] = Field(default_factory=list)


@dataclass(slots=True)
class Page:
    """One page of customers of one slice of a read."""

    slice_filters: dict[str, str]
    page_no: int
    total_pages: int
    customers: list[Customer]


Coverage = Literal["proven", "unproven", "incomplete"]


@dataclass
class ReadReport:
    """How a read went; updated live while the read runs, final when iteration ends.

    - `pages_read`: pages fetched and validated (pages without customers are counted but not yielded);
    - `pages_total`: pages known so far (grows as slices are discovered);
    - `slices`: slices read completely (1 for an unsliced query);
    - `truncated`: the unsliced query hit the cap (`totalCount >= maximumCount`);
    - `coverage`: "proven" (a single complete query, or slices that add up to the true `totalCount`),
      "unproven" (the cap was hit and the API does not tell the true total, e.g.
      `totalCount == maximumCount`), "incomplete" (slices add up to less or more than the true total, or
      a slice could not be split below the cap and was read capped);
    - `complete`: every slice was read completely and coverage is not "incomplete";
    - `expected_total`: the true number of matches when known, else None;
    - `discarded_pages`: truncated first pages thrown away before splitting;
    - `query_restarts`: queries re-issued because their queryId expired;
    - `coverage_notes`: why coverage is not "proven" (one line per finding).
    """

    client_no: int = 0
    filters: dict[str, str] = field(default_factory=dict)
    pages_read: int = 0
    pages_total: int = 0
    slices: int = 0
    customers: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    coverage: Coverage = "unproven"
    complete: bool = False
    expected_total: int | None = None
    discarded_pages: int = 0
    query_restarts: int = 0
    coverage_notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
