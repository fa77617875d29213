"""Customer models (msgspec structs, as the decoder fills them) and the read report.

A page is decoded in one step, straight from the bytes into these structs (`parsing`): the types
below are exact and bounded, so an ordinary page needs nothing after the decoder. Reading is still
tolerant, because the docs do not say whether empty fields are left out, sent as `null` or as `""`
(`docs/amili-api.md`); a body the strict types refuse is read again by the tolerant models
(`_tolerant`, pydantic), which accept, into these same structs:

- every field but `customerNo` is optional and defaults to None;
- unknown fields are kept: in `model_extra` (None when there are none) and in `as_json(...)`;
- for dates, whole numbers and amounts, `""` reads as None (other string fields keep `""` as sent);
- dates (`YYYY-MM-DD` in the API) are kept as the strings sent, not parsed: one odd date must not
  fail a page of a thousand customers, and the values stay JSON-native for the diff and the
  snapshot (`""` reads as None there too); amounts and rates (`balanceTotal`,
  `limitAmount`, `discountRate`) are floats (a JSON integer too): a JSON number round-trips exactly
  through a float's shortest repr, but compute money deltas with `Decimal(str(x))`, not with float
  arithmetic;
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
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT_CHARS = 10_000
MAX_LIST_ITEMS = 1_000
MAX_EXTRA_DEPTH = 8
MAX_CUSTOMER_NO_CHARS = 64
MAX_PAGE_SIZE = 10_000
MAX_TOTAL_PAGES = 100_000
MAX_BODY_BYTES = 64 * 1024 * 1024  # a full page of 1000 customers is ~1.5 MB


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


def summary_problem(
    limit: int | None, pages: int | None, total: int | None, current: int | None
) -> str | None:
    """Why a summary's numbers contradict each other or the bounds, or None."""
    if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
        return f"pageSizeLimit {limit} is not within 1..{MAX_PAGE_SIZE}"
    if limit is None and total:
        return f"pageSizeLimit is missing while totalCount is {total}"
    if pages is not None and pages > MAX_TOTAL_PAGES:
        return f"totalPages {pages} is above {MAX_TOTAL_PAGES}"
    if pages is not None and total is not None and pages > max(1, total):
        return f"totalPages {pages} is more than totalCount {total} could fill"
    if current is not None and limit is not None and current > limit:
        return f"currentPageSize {current} is above pageSizeLimit {limit}"
    return None


# 1..64 characters; no control characters, '/' or '\\'; no blank at either end. Checked by the
# decoder's regex (Python's `re`, where `\Z` is the end: `$` would also match before a final "\n");
# the tolerant models use the same pattern with the end as pydantic-core's regex writes it.
_UNSAFE = r"\x00-\x1f\x7f-\x9f/\\"
_CUSTOMER_NO = rf"^[^{_UNSAFE}\s](?:[^{_UNSAFE}]{{0,{MAX_CUSTOMER_NO_CHARS - 2}}}[^{_UNSAFE}\s])?"
CUSTOMER_NO_PATTERN = _CUSTOMER_NO + "$"

# The types of the decoder: exact JSON types, bounded. Whatever they refuse goes to the tolerant path.
Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Finite = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]  # not inf, not NaN
Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
Date = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS)]  # "" is None: the tolerant path
TextList = Annotated[list[Text], Meta(max_length=MAX_LIST_ITEMS)]
CustomerNo = Annotated[str, Meta(pattern=_CUSTOMER_NO + r"\Z")]

# The unknown fields of an object (as the tolerant path found them), None when there are none. The
# decoder never fills it: to the decoder, it is a member that no JSON value satisfies (an integer
# >= 1 and <= 0), so the name sent by the API is an unknown field like any other, and an unknown
# field sends the whole body to the tolerant path.
EXTRA_KEY = "(unknown fields)"
if TYPE_CHECKING:
    Extra = dict[str, Any] | None
else:
    Extra = Annotated[int, Meta(ge=1, le=0)]


class _ApiStruct(Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Decoded API objects: plain attributes, no validation on construction (the decoder or the
    tolerant models validated them), not tracked by the cyclic GC (decoded JSON holds no cycles)."""


class PostalAddress(_ApiStruct):
    addressLine1: Text | None = None
    addressLine2: Text | None = None
    addressLine3: Text | None = None
    postalCode: Text | None = None
    cityName: Text | None = None
    countryText: Text | None = None
    countryCode: Text | None = None
    model_extra: Extra = field(default=None, name=EXTRA_KEY)


class Distribution(_ApiStruct):
    type: Text | None = None
    einvoiceCode: Int64 | None = None
    peppolEndpointId: Text | None = None
    peppolEndpointIdScheme: Text | None = None
    model_extra: Extra = field(default=None, name=EXTRA_KEY)


class Customer(_ApiStruct):
    """One ARM customer, as the list and GET-one endpoints return it."""

    # One declared field per API field: alike in shape by nature.
    customerNo: CustomerNo
    clientNo: Int64 | None = None
    accountNo: Int64 | None = None
    name: Text | None = None
    informalName: Text | None = None
    customerGroupCode: Text | None = None
    customerCategory: Text | None = None
    registrationStatusCode: Text | None = None
    registrationStatusDate: Date | None = None
    activeStatusWeb: Text | None = None
    organizationNo: Text | None = None
    organizationNoScheme: Text | None = None
    ssn: Text | None = None  # personal: kept out of repr()
    ssnCountry: Text | None = None
    dateOfBirth: Date | None = None  # personal: kept out of repr()
    yearOfBirth: Int64 | None = None
    phoneNo: Text | None = None
    secondaryPhoneNo: Text | None = None
    emailAddressDocument: TextList | None = None
    secondaryEmailAddress: TextList | None = None
    postalAddress: PostalAddress | None = None
    postalAddressChanged: Date | None = None
    postalReturnStatus: Int64 | None = None
    postalReturnDate: Date | None = None
    priceNetOrGross: Text | None = None
    language: Text | None = None
    usingLanguage: Text | None = None
    currency: Text | None = None
    sellerReference: Text | None = None
    buyerReference: Text | None = None
    bankAccountNo: Text | None = None
    dueDays: Int64 | None = None
    vatLiable: bool | None = None
    discountRate: Finite | None = None
    limitAmount: Finite | None = None
    customerMessage: Text | None = None
    stopReminderUntil: Date | None = None
    stopDebtCollectionUntil: Date | None = None
    stopInterestCalcUntil: Date | None = None
    distribution: Distribution | None = None
    efakturaBlockIds: TextList | None = None
    peppolBlockIds: TextList | None = None
    digipostBlockIds: TextList | None = None
    arRules: TextList | None = None
    naceCodes: TextList | None = None
    districtCodes: TextList | None = None
    parentCustomerNo: Text | None = None
    parentOrganizationNo: Text | None = None
    customerKid: Text | None = None
    balanceTotal: Finite | None = None
    model_extra: Extra = field(default=None, name=EXTRA_KEY)

    def __repr__(self) -> str:
        shown = (f"{n}={getattr(self, n)!r}" for n in self.__struct_fields__ if n not in _PERSONAL)
        return f"Customer({', '.join(shown)})"


_PERSONAL = frozenset({"ssn", "dateOfBirth"})

# The API's fields of a customer (the extras' slot is not one of them).
DECLARED_FIELDS = frozenset(Customer.__struct_fields__) - {"model_extra"}


class Summary(_ApiStruct):
    """The `summary` object of a list response. Missing numbers are treated as protocol errors by the
    reader where it needs them; `nextPage` may be absent, null or empty (the reader never follows it).
    `summary_problem` holds what its numbers must satisfy."""

    pageNo: Count | None = None
    currentPageSize: Count | None = None
    pageSizeLimit: Count | None = None
    totalPages: Count | None = None
    totalCount: Count | None = None
    maximumCount: Count | None = None
    nextPage: Text | None = None
    lastPage: Text | None = None
    queryId: Text | None = None


class CustomerList(_ApiStruct):
    """A whole list response: `{"summary": {...}, "customers": [...]}`."""

    summary: Summary
    customers: list[Customer] = field(default_factory=list)


def as_json(value: Any) -> Any:
    """A decoded value as plain JSON values: structs as objects with every declared field (None
    included) and their unknown fields, like the API object they were read from."""
    if isinstance(value, Struct):
        out = {
            name: as_json(getattr(value, name)) for name in value.__struct_fields__ if name != "model_extra"
        }
        extra = getattr(value, "model_extra", None)
        return {**out, **extra} if extra else out
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


@dataclass(slots=True)
class Page:
    """One page of customers of one slice of a read."""

    slice_filters: dict[str, str]
    page_no: int
    total_pages: int
    customers: list[Customer]


@dataclass(frozen=True, slots=True)
class NamePrefixes:
    """What a read of a client teaches the next one: every name prefix it split (folded), with the
    characters that followed it in the children that matched customers, and how many customers the
    read had. Tens to hundreds of short strings (13 for the bench's 100,000), stored between runs."""

    prefixes: dict[str, str]
    customers: int = 0

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> NamePrefixes | None:
        """None when `raw` is not what `to_bytes` writes (a hint is dropped, never trusted)."""
        try:
            return msgspec.json.decode(raw, type=cls)
        except msgspec.DecodeError:  # malformed, or the wrong shape (ValidationError)
            return None


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
    - `known_names`: names the caller passed in to learn from (or the customers of the earlier read
      whose `NamePrefixes` it passed), `known_prefixes`: the dense prefixes the planner got from
      them; `customerno_prefix`: the API matches
      `customerno` as a prefix (True/False) when the read had to know, else None.
    """

    client_no: int = 0
    filters: dict[str, str] = dataclass_field(default_factory=dict)
    pages_read: int = 0
    pages_total: int = 0
    slices: int = 0
    customers: int = 0
    retries: dict[str, int] = dataclass_field(default_factory=dict)
    api_calls: dict[str, int] = dataclass_field(default_factory=dict)
    truncated: bool = False
    coverage: Coverage = "unproven"
    complete: bool = False
    expected_total: int | None = None
    discarded_pages: int = 0
    query_restarts: int = 0
    coverage_notes: list[str] = dataclass_field(default_factory=list)
    api_requests: int = 0
    requests_per_1000: float | None = None
    splits: int = 0
    slice_queries: int = 0
    probe_queries: int = 0
    empty_slices: int = 0
    unreachable: int | None = None
    gap_count: int = 0
    gaps: list[dict[str, Any]] = dataclass_field(default_factory=list)
    known_names: int = 0
    known_prefixes: int = 0
    customerno_prefix: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
