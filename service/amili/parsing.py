"""Turning response bodies into models.

Two ways were measured (`bench/client_bench.py`, 1000-customer pages of the sandbox):
`CustomerList.model_validate_json(body)` (pydantic-core parses the bytes itself, no intermediate
dicts) and `orjson.loads(body)` followed by `CustomerList.model_validate(data)`. The first is the
faster one here (see the benchmark output), so it is the default; `parse_list_orjson` stays for the
benchmark. Both tell a body that is not JSON (retried: `Malformed`) from JSON of the wrong shape
(not retried: `AmiliProtocolError`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from ._http import Malformed
from .errors import AmiliProtocolError
from .models import Customer, CustomerList

_JSON_ERRORS = {"json_invalid", "json_type"}


def _shape_error(what: str, exc: ValidationError) -> AmiliProtocolError:
    first = exc.errors(include_url=False, include_input=False)[:3]
    where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in first)
    return AmiliProtocolError(f"{what} has an unexpected shape ({exc.error_count()} error(s)): {where}")


def parse_list(body: bytes, what: str = "customer list") -> CustomerList:
    try:
        return CustomerList.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] in _JSON_ERRORS:
            raise Malformed(f"{errors[0]['msg']} (body of {len(body)} bytes)") from None
        raise _shape_error(what, exc) from None


def parse_list_orjson(body: bytes, what: str = "customer list") -> CustomerList:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"{exc.msg} (body of {len(body)} bytes)") from None
    try:
        return CustomerList.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(what, exc) from None


def parse_customer(body: bytes) -> Customer:
    """GET one customer: the customer object itself, or wrapped as `{"customer": {...}}` or as a
    one-element `{"customers": [...]}` list (the docs show no example; all three are accepted)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"{exc.msg} (body of {len(body)} bytes)") from None
    if isinstance(data, dict) and "customerNo" not in data:
        if isinstance(data.get("customer"), dict):
            data = data["customer"]
        elif isinstance(data.get("customers"), list) and len(data["customers"]) == 1:
            data = data["customers"][0]
    try:
        return Customer.model_validate(data)
    except ValidationError as exc:
        raise _shape_error("customer", exc) from None
