"""Turning response bodies into models.

Every body is decoded first by one msgspec decoder straight from the bytes into the structs of
`models` (`Customer`, `CustomerList`): no intermediate dicts, the types exact, every bound checked by
the decoder itself (64-bit integers, finite numbers, string and list lengths, the customerNo
pattern) and unknown fields refused. That is the path of an ordinary page, and it costs about what
`orjson.loads` of the same bytes costs (`bench/decode_bench.py`); the summary's cross-field checks
(`summary_problem`) are the only Python step after it.

A body the strict decoder refuses is read again by the tolerant models (`_tolerant`, pydantic:
the reference for what the API may send): values that need the tolerance (`""` for an empty
number, a number for a string, unknown fields) are accepted there and turned into the same structs;
anything else fails there, with the error the tolerant models give. So both outcomes are the ones of
the tolerant reading, and only their speed depends on the path. They tell a body that is not JSON
(retried: `Malformed`; a truncated body or invalid UTF-8 is that too) from JSON of the wrong shape or
outside the bounds (not retried: `AmiliBadData`, naming the client, the page and the field).

The bounds of unknown fields are checked on the tolerant path, after validation, rather than by a
model validator: a Python validator per customer costs a quarter of a page's parsing, this loop a
fraction of that.

`parse_list_orjson` (`orjson.loads` and the tolerant models) stays for the benchmarks.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from pydantic import BaseModel, ValidationError

from service.logs import get_logger
from service.metrics import PAGES_TOLERANT

from . import _tolerant as tolerant
from ._http import Malformed
from .errors import AmiliBadData
from .models import MAX_BODY_BYTES, Customer, CustomerList, extra_problem, summary_problem

log = get_logger(__name__)

__all__ = ["parse_customer", "parse_list", "parse_list_orjson", "parse_list_tolerant"]

_JSON_ERRORS = {"json_invalid", "json_type"}
# JSON the parser refuses for what it is, not for how it arrived: retrying cannot help
_DETERMINISTIC = ("recursion limit",)
# the names pydantic gives the members of a union in an error's location, not fields
_UNION_TAGS = {"float", "int", "str", "bool", "none", "list", "dict"}

_LIST = msgspec.json.Decoder(CustomerList)
_ONE = msgspec.json.Decoder(Customer)


def _field(loc: tuple[int | str, ...]) -> str:
    """`customers[17].balanceTotal` from pydantic's location (without its union member names)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier() and part not in _UNION_TAGS:
            text += f".{part}" if text else part
    return text or "body"


def _shape_error(what: str, exc: ValidationError) -> AmiliBadData:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    field = _field(first["loc"])
    others = len({_field(e["loc"]) for e in errors}) - 1  # a union's members report the same field
    more = f" (and {others} more field(s))" if others else ""
    return AmiliBadData(what, field, f"{first['msg'].removeprefix('Value error, ')}{more}")


def _check_size(body: bytes, what: str) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise AmiliBadData(what, "body", f"{len(body)} bytes, more than {MAX_BODY_BYTES}")


def _check_extras(answer: tolerant.CustomerList, what: str) -> None:
    for i, customer in enumerate(answer.customers):
        _check_customer_extras(customer, what, f"customers[{i}]")


def _check_customer_extras(customer: tolerant.Customer, what: str, where: str) -> None:
    parts: tuple[tuple[str, BaseModel | None], ...] = (
        ("", customer),
        (".postalAddress", customer.postalAddress),
        (".distribution", customer.distribution),
    )
    for suffix, model in parts:
        extra = model.__pydantic_extra__ if model is not None else None
        if extra:
            problem = extra_problem(extra)
            if problem is not None:
                name, why = problem
                raise AmiliBadData(what, f"{where}{suffix}.{name}", why)


def parse_list(body: bytes, what: str = "customer list") -> CustomerList:
    """A list page: decoded strictly, or (when the decoder refuses it) by the tolerant models."""
    _check_size(body, what)
    try:
        answer = _LIST.decode(body)
    except msgspec.MsgspecError as exc:
        _refused(exc)
        return parse_list_tolerant(body, what)
    s = answer.summary
    if summary_problem(s.pageSizeLimit, s.totalPages, s.totalCount, s.currentPageSize) is not None:
        return parse_list_tolerant(body, what)  # raises, naming the problem as the tolerant path does
    return answer


_told = False


def _refused(exc: msgspec.MsgspecError) -> None:
    """Count an answer the strict decoder refused; say why once per process. When the API keeps
    sending something the strict types do not take (a field that is not declared, `""` for an
    empty number), every page costs the tolerant path: declare it in both models to win it back."""
    global _told
    PAGES_TOLERANT.inc()
    if not _told:
        _told = True
        # msgspec names the type and the path of the value, never the value itself
        log.info("amili.tolerant_decode", reason=str(exc)[:300])


def parse_list_tolerant(body: bytes, what: str = "customer list") -> CustomerList:
    """A list page read by the tolerant models (pydantic parsing the bytes itself), as structs."""
    _check_size(body, what)
    try:
        answer = tolerant.CustomerList.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] in _JSON_ERRORS:
            if any(text in errors[0]["msg"] for text in _DETERMINISTIC):
                raise AmiliBadData(what, "body", errors[0]["msg"]) from None
            raise Malformed(f"{what}: {errors[0]['msg']} (body of {len(body)} bytes)") from None
        raise _shape_error(what, exc) from None
    _check_extras(answer, what)
    return tolerant.to_customer_list(answer)


def parse_list_orjson(body: bytes, what: str = "customer list") -> CustomerList:
    """`orjson.loads`, then the tolerant models (for the benchmarks)."""
    _check_size(body, what)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"{what}: {exc.msg} (body of {len(body)} bytes)") from None
    try:
        answer = tolerant.CustomerList.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(what, exc) from None
    _check_extras(answer, what)
    return tolerant.to_customer_list(answer)


def parse_customer(body: bytes, what: str = "customer") -> Customer:
    """GET one customer: the customer object itself, or wrapped as `{"customer": {...}}` or as a
    one-element `{"customers": [...]}` list (the docs show no example; all three are accepted)."""
    _check_size(body, what)
    try:
        return _ONE.decode(body)
    except msgspec.MsgspecError as exc:
        _refused(exc)  # wrapped, tolerated or bad: the tolerant path tells which
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:
            raise AmiliBadData(what, "body", exc.msg) from None
        raise Malformed(f"{what}: {exc.msg} (body of {len(body)} bytes)") from None
    if isinstance(data, dict) and "customerNo" not in data:
        if isinstance(data.get("customer"), dict):
            data = data["customer"]
        elif isinstance(data.get("customers"), list) and len(data["customers"]) == 1:
            data = data["customers"][0]
    try:
        customer = tolerant.Customer.model_validate(data)
    except ValidationError as exc:
        raise _shape_error(what, exc) from None
    _check_customer_extras(customer, what, "customer")
    return tolerant.to_customer(customer)
