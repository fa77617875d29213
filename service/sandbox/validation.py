"""Reading requests: query parameters, JSON bodies, the customer body's schema, and merging a write."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from starlette.requests import Request

from service.sandbox import data as g
from service.sandbox.responses import ApiError
from service.sandbox.store import copy_customer


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def query_params(request: Request) -> dict[str, str]:
    """Query parameters, names lower-cased (ASP.NET-style binding), first value wins; "" = not given."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key.lower(), value)
    return {k: v for k, v in params.items() if v.strip() != ""}


def int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isdigit() or (text[:1] in "+-" and text[1:].isdigit())) or not text.isascii():
        raise ApiError(400, f"{name} must be an integer, got {raw!r}", name)
    return int(text)


async def json_body(request: Request, *, blank: Any = None) -> Any:
    """The parsed body; a blank body is `blank` when given (the controls take `{}`), else invalid."""
    raw = await request.body()
    if blank is not None and not raw.strip():
        return blank
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None


def _check_date(value: str) -> bool:
    if value == "":
        return True
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _type_ok(kind: str, value: Any) -> bool:
    if kind == g.FieldType.STR:
        return isinstance(value, str)
    if kind == g.FieldType.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == g.FieldType.NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == g.FieldType.BOOL:
        return isinstance(value, bool)
    if kind == g.FieldType.DATE:
        return isinstance(value, str) and _check_date(value)
    if kind == g.FieldType.STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def validate_customer_body(body: Any) -> dict[str, Any]:
    """Check a POST/PUT body against the documented customer object; 400 naming the first bad key."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (one customer)")
    for key, value in body.items():
        kind = g.CUSTOMER_SCHEMA.get(key)
        if kind is None:
            raise ApiError(400, f"unknown field {key!r}", key)
        if value is None:
            continue
        if key == "postalAddress":
            _check_postal_address(value)
        elif key == "distribution":
            _check_distribution(value)
        elif not _type_ok(kind, value):
            raise ApiError(400, f"{key} must be a{'n' if kind[0] in 'aeiou' else ''} {kind}", key)
    return body


def _check_postal_address(value: Any) -> None:
    if not isinstance(value, dict):
        raise ApiError(400, "postalAddress must be an object", "postalAddress")
    for sub, sub_value in value.items():
        if sub not in g.POSTAL_ADDRESS_KEYS:
            raise ApiError(400, f"unknown field postalAddress.{sub}", f"postalAddress.{sub}")
        if sub_value is not None and not isinstance(sub_value, str):
            raise ApiError(400, f"postalAddress.{sub} must be a string", f"postalAddress.{sub}")


def _check_distribution(value: Any) -> None:
    if not isinstance(value, dict):
        raise ApiError(400, "distribution must be an object", "distribution")
    for sub, sub_value in value.items():
        sub_kind = g.DISTRIBUTION_SCHEMA.get(sub)
        if sub_kind is None:
            raise ApiError(400, f"unknown field distribution.{sub}", f"distribution.{sub}")
        if sub_value is not None and not _type_ok(sub_kind, sub_value):
            raise ApiError(400, f"distribution.{sub} must be a {sub_kind}", f"distribution.{sub}")


def merge_customer(current: g.Customer, body: dict[str, Any], today: str) -> g.Customer:
    """Apply a write: a missing or null key keeps its value; postalAddress is replaced as a whole group."""
    new = copy_customer(current)
    for key, value in body.items():
        if value is None or key in ("customerNo", "clientNo"):
            continue
        if key == "postalAddress":
            address = {k: (value.get(k) if value.get(k) is not None else "") for k in g.POSTAL_ADDRESS_KEYS}
            if address != current.get("postalAddress") and "postalAddressChanged" not in body:
                new["postalAddressChanged"] = today
            new[key] = address
        elif key == "distribution":
            merged = dict(current.get("distribution") or {})
            merged.update({k: v for k, v in value.items() if v is not None})
            new[key] = merged
        elif g.CUSTOMER_SCHEMA[key] == g.FieldType.DATE and value == "":
            new.pop(key, None)  # "" clears a date (it is then absent)
        else:
            new[key] = list(value) if isinstance(value, list) else value
    return {k: new[k] for k in g.CUSTOMER_SCHEMA if k in new}
