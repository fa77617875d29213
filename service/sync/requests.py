"""The fetch request: its schema and the parsing that decides what goes to the dead-letter topic."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

FILTER_KEYS = ("customerno", "accountno", "organizationno", "name", "customercategory")


class Filters(BaseModel):
    """List filters of the ARM API (names as in its query string)."""

    model_config = ConfigDict(extra="forbid")

    customerno: str | None = None
    accountno: Annotated[str, Field(pattern=r"^\d+$")] | None = None
    organizationno: str | None = None
    name: Annotated[str, Field(min_length=1)] | None = None
    customercategory: str | None = None

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class FetchRequest(BaseModel):
    """`{"requestId", "clientNo", "requestedAt", "filters"?, "reason"?}`; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requestId: UUID
    clientNo: Annotated[int, Field(gt=0)]
    requestedAt: AwareDatetime
    filters: Filters | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None

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
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest("bad_json", f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedRequest("bad_json", f"expected a JSON object, got {type(payload).__name__}")
    try:
        request = FetchRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()[:5]
        )
        code = "unknown_field" if any(e["type"] == "extra_forbidden" for e in exc.errors()) else "invalid"
        raise MalformedRequest(code, problems) from None
    if key.decode("utf-8", "replace") != str(request.clientNo):
        raise MalformedRequest(
            "key_mismatch",
            f"the key {key[:40]!r} is not the clientNo {request.clientNo} (requests are keyed by client)",
        )
    return request


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
