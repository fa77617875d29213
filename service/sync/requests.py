"""The fetch request: its schema and the parsing that decides what goes to the dead-letter topic.

Bounds (every breach is a `MalformedRequest`, so the record goes to the DLQ and its partition moves
on; nothing a request can hold may make the worker fail later, which would redeliver it forever):

- `clientNo` is a JSON integer (not a string, float or boolean) in 1..2^63-1: it is a Kafka key, a
  SQLite integer and part of API paths, all of which are signed 64-bit;
- strings are bounded (`MAX_FILTER_CHARS` per filter value, `MAX_REASON_CHARS` for the reason) and
  hold no control characters (a NUL byte or a newline in a filter would reach the API's query string);
- the body is UTF-8 JSON of at most `max_request_bytes`, nested at most `MAX_DEPTH` levels, an
  object without repeated keys (which member wins would depend on the parser);
- the record key is the clientNo's decimal digits.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

FILTER_KEYS = ("customerno", "accountno", "organizationno", "name", "customercategory")

INT64_MAX = 2**63 - 1
MAX_FILTER_CHARS = 200
MAX_REASON_CHARS = 500
MAX_DEPTH = 8  # a request is at most 3 levels deep; more is never a real request
MAX_KEY_BYTES = 20  # the digits of a signed 64-bit integer


def _printable(value: str) -> str:
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError("control characters are not allowed")
    return value


FilterText = Annotated[str, Field(min_length=1, max_length=MAX_FILTER_CHARS), AfterValidator(_printable)]


class Filters(BaseModel):
    """List filters of the ARM API (names as in its query string)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    customerno: FilterText | None = None
    accountno: Annotated[str, Field(pattern=r"^\d+$", max_length=19)] | None = None
    organizationno: FilterText | None = None
    name: FilterText | None = None
    customercategory: FilterText | None = None

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class FetchRequest(BaseModel):
    """`{"requestId", "clientNo", "requestedAt", "filters"?, "reason"?}`; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requestId: UUID
    clientNo: Annotated[int, Field(gt=0, le=INT64_MAX, strict=True)]
    requestedAt: AwareDatetime
    filters: Filters | None = None
    reason: Annotated[str, Field(max_length=MAX_REASON_CHARS), AfterValidator(_printable)] | None = None

    @property
    def filter_query(self) -> dict[str, str]:
        return self.filters.as_query() if self.filters else {}

    @property
    def is_filtered(self) -> bool:
        return bool(self.filter_query)


class MalformedRequest(Exception):
    """A request that can never succeed; it goes to the DLQ with `code` and the message as reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_request(key: bytes | None, value: bytes | None, max_bytes: int) -> FetchRequest:
    """Validate one request record; raise `MalformedRequest` naming what is wrong."""
    if value is None:
        raise MalformedRequest("empty", "the record has no value")
    if len(value) > max_bytes:
        raise MalformedRequest("oversize", f"the record is {len(value)} bytes, more than {max_bytes}")
    if not key:
        raise MalformedRequest("no_key", "the record has no key (the key must be the clientNo)")
    payload = _decode(value)
    try:
        request = FetchRequest.model_validate(payload)
    except ValidationError as exc:
        raise MalformedRequest(_code(exc), _problems(exc)) from None
    if len(key) > MAX_KEY_BYTES or key.decode("utf-8", "replace") != str(request.clientNo):
        raise MalformedRequest(
            "key_mismatch",
            f"the key {key[:40]!r} is not the clientNo {request.clientNo} (requests are keyed by client)",
        )
    return request


def _decode(value: bytes) -> dict[str, Any]:
    """The JSON object of a request body (UTF-8, not too deep, no repeated keys)."""
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "UTF-8" in text:
            raise MalformedRequest("bad_utf8", f"not valid UTF-8: {text}") from None
        if "depth" in text or "recursion" in text:
            raise MalformedRequest("too_deep", f"nested more than {MAX_DEPTH} levels: {text}") from None
        raise MalformedRequest("bad_json", f"not JSON: {text}") from None
    if not isinstance(payload, dict):
        raise MalformedRequest("bad_json", f"expected a JSON object, got {type(payload).__name__}")
    if _depth(payload) > MAX_DEPTH:
        raise MalformedRequest("too_deep", f"nested more than {MAX_DEPTH} levels")
    repeated = _repeated_key(value)
    if repeated is not None:
        raise MalformedRequest("duplicate_key", f"the key {repeated[:60]!r} appears twice in one object")
    return payload


def _depth(value: object, level: int = 1) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1


def _repeated_key(value: bytes) -> str | None:
    """The first key repeated within one object, if any (orjson silently keeps the last one)."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if not repeated and len(set(keys)) != len(keys):
            repeated.append(next(k for k in keys if keys.count(k) > 1))
        return dict(items)

    json.loads(value, object_pairs_hook=pairs)  # already known to be valid JSON
    return repeated[0] if repeated else None


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _code(exc: ValidationError) -> str:
    errors = exc.errors()
    types = {e["type"] for e in errors}
    if "extra_forbidden" in types:
        return "unknown_field"
    if "missing" in types:
        return "missing_field"
    if types & _RANGE_ERRORS or any(_huge_integer(e["input"]) for e in errors if e["type"] == "int_type"):
        return "out_of_range"
    if "string_too_long" in types:
        return "too_long"
    if "string_too_short" in types:
        return "too_short"
    return "invalid"


def _huge_integer(value: object) -> bool:
    """A JSON integer beyond 64 bits, which the JSON parser hands over as a float."""
    return isinstance(value, float) and (value != value or abs(value) > INT64_MAX)


def _problems(exc: ValidationError) -> str:
    """What is wrong, by field; never the values themselves (filters hold personal data)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)[:5]
    )


def new_request_payload(
    request_id: UUID, client_no: int, requested_at: datetime, filters: dict[str, str], reason: str | None
) -> bytes:
    body: dict[str, object] = {
        "requestId": str(request_id),
        "clientNo": client_no,
        "requestedAt": requested_at.isoformat(),
    }
    if filters:
        body["filters"] = Filters.model_validate(filters).as_query()
    if reason:
        body["reason"] = reason
    return orjson.dumps(body)
