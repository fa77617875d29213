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

Bounds (a record or summary outside them fails validation, and so its page: nothing of a page that
does not validate is published). What the API sends travels on into SQLite, Kafka keys and JSON
events, so it must fit them:

- whole numbers are signed 64-bit (`-2^63..2^63-1`), amounts and rates finite (`NaN`/`Infinity`,
  which the JSON parser would accept, are rejected rather than turned into `null` later);
- strings hold at most `MAX_TEXT_CHARS` characters, lists at most `MAX_LIST_ITEMS` items; unknown
  fields obey the same bounds and nest at most `MAX_EXTRA_DEPTH` levels (checked by `parsing`);
  a body holds at most `MAX_BODY_BYTES`;
- `customerNo` is 1..`MAX_CUSTOMER_NO_CHARS` characters without control characters, `/` or `\\`, and
  without leading or trailing blanks: it is the last part of the Kafka key `{clientNo}/{customerNo}`
  and a path segment of GET-one, where it is percent-encoded, but an encoded `/` (`%2F`) is decoded
  or refused by many servers and gateways, so such a customer could never be confirmed present or
  absent;
- a summary's numbers are not negative, `pageSizeLimit` is 1..`MAX_PAGE_SIZE` (when customers
  exist it must be given: the reader derives page counts from it), and `totalPages` is at most
  `MAX_TOTAL_PAGES` and no more than the customers it claims could fill.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT_CHARS = 10_000
MAX_LIST_ITEMS = 1_000
MAX_EXTRA_DEPTH = 8
MAX_CUSTOMER_NO_CHARS = 64
MAX_PAGE_SIZE = 10_000
MAX_TOTAL_PAGES = 100_000
MAX_BODY_BYTES = 64 * 1024 * 1024  # a full page of 1000 customers is ~1.5 MB


def _none(_value: object) -> None:
    return None


def extra_problem(extra: dict[str, Any]) -> tuple[str, str] | None:
    """(name, why) of the first unknown field whose value breaks the bounds, or None."""
    for name, value in extra.items():
        why = _in_bounds(value)
        if why is not None:
            return name[:60], why
    return None


def _in_bounds(value: object, depth: int = 0) -> str | None:
    """Why an unknown field's value breaks the bounds, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "integer outside signed 64-bit"
    if isinstance(value, float):
        return None if math.isfinite(value) else "number is not finite"
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT_CHARS else f"string longer than {MAX_TEXT_CHARS} characters"
    if depth >= MAX_EXTRA_DEPTH:
        return f"nested deeper than {MAX_EXTRA_DEPTH} levels"
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            return f"list longer than {MAX_LIST_ITEMS} items"
        return next((why for v in value if (why := _in_bounds(v, depth + 1))), None)
    if isinstance(value, dict):
        if len(value) > MAX_LIST_ITEMS:
            return f"object with more than {MAX_LIST_ITEMS} members"
        return next((why for v in value.values() if (why := _in_bounds(v, depth + 1))), None)
    return None


# 1..64 characters; no control characters, '/' or '\\'; no blank at either end (checked by the
# regex engine of pydantic-core: a Python validator per customer costs a tenth of a page's parsing)
_UNSAFE = r"\x00-\x1f\x7f-\x9f/\\"
CUSTOMER_NO_PATTERN = rf"^[^{_UNSAFE}\s](?:[^{_UNSAFE}]{{0,{MAX_CUSTOMER_NO_CHARS - 2}}}[^{_UNSAFE}\s])?$"


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
    """The `summary` object of a list response. Missing numbers are treated as protocol errors by the
    reader where it needs them; `nextPage` may be absent, null or empty (the reader never follows it)."""

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
        limit, pages, total = self.pageSizeLimit, self.totalPages, self.totalCount
        if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"pageSizeLimit {limit} is not within 1..{MAX_PAGE_SIZE}")
        if limit is None and total:
            raise ValueError(f"pageSizeLimit is missing while totalCount is {total}")
        if pages is not None and pages > MAX_TOTAL_PAGES:
            raise ValueError(f"totalPages {pages} is above {MAX_TOTAL_PAGES}")
        if pages is not None and total is not None and pages > max(1, total):
            raise ValueError(f"totalPages {pages} is more than totalCount {total} could fill")
        if self.currentPageSize is not None and limit is not None and self.currentPageSize > limit:
            raise ValueError(f"currentPageSize {self.currentPageSize} is above pageSizeLimit {limit}")
        return self


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
    - `coverage_notes`: why coverage is not "proven" (one line per finding);
    - `api_requests`: HTTP requests the read sent (every attempt, retries and probes included), and
      `requests_per_1000` of them per 1,000 customers read;
    - `splits`, `slice_queries` (first requests of slices, probes and the customerno probe included),
      `probe_queries` (shortfall probes), `empty_slices` (slices that matched nobody);
    - `unreachable`: when the API reports true totals, customers the query matches that the read could
      not reach (`expected_total - customers`); None when totals are capped;
    - `gap_count` and `gaps`: detected gaps, at most 16 entries of a few hundred bytes: `kind`
      ("shortfall": exact count, true totals; "below-cap": a capped split slice whose children hold
      less than the cap; "unmatched-names": sampled names no child matches; "ordered-sample": a capped
      split slice whose first page came in name order, so its children were learned from its
      alphabetical start only, `missing` unknown (0); "capped": a slice read capped), `slice` (its filters, values cut to 32 characters), `missing` (exact, or a lower
      bound), `exact`, `unmatchedPrefixes` (where sampled names fell between the children, cut);
    - `known_names`: names the caller passed in to learn from; `customerno_prefix`: the API matches
      `customerno` as a prefix (True/False) when the read had to know, else None.
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
    api_requests: int = 0
    requests_per_1000: float | None = None
    splits: int = 0
    slice_queries: int = 0
    probe_queries: int = 0
    empty_slices: int = 0
    unreachable: int | None = None
    gap_count: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    known_names: int = 0
    customerno_prefix: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
