"""The strict decoder (msgspec structs) against the tolerant models (pydantic, the reference): the
same fields, the same outcome for every body, and the strict path taken for the sandbox's pages."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from bench.decode_bench import render_pages
from service.amili import _tolerant as tolerant
from service.amili import models, parsing
from service.amili._http import Malformed
from service.amili.errors import AmiliBadData
from service.amili.models import Customer, as_json
from service.amili.parsing import parse_customer, parse_list, parse_list_tolerant
from service.metrics import PAGES_TOLERANT

PAIRS = [
    (models.Customer, tolerant.Customer),
    (models.PostalAddress, tolerant.PostalAddress),
    (models.Distribution, tolerant.Distribution),
    (models.Summary, tolerant.Summary),
    (models.CustomerList, tolerant.CustomerList),
]


@pytest.mark.parametrize(("struct", "model"), PAIRS)
def test_the_structs_and_the_tolerant_models_declare_the_same_fields(struct: Any, model: Any) -> None:
    fields = [f for f in struct.__struct_fields__ if f != "model_extra"]
    assert fields == list(model.model_fields)


def test_sandbox_pages_take_the_strict_path(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = render_pages(2, 300)
    expected = [parse_list_tolerant(b) for b in bodies]

    def refused(body: bytes, what: str = "") -> models.CustomerList:
        raise AssertionError("the strict decoder refused a sandbox page")

    monkeypatch.setattr(parsing, "parse_list_tolerant", refused)
    assert [parse_list(b) for b in bodies] == expected


PAGE: dict[str, Any] = {
    "summary": {"pageNo": 1, "currentPageSize": 1, "pageSizeLimit": 10, "totalPages": 1, "totalCount": 1},
    "customers": [{"customerNo": "1", "name": "A", "balanceTotal": 1.5}],
}


def _with(path: tuple[str | int, ...], value: object) -> bytes:
    page: Any = orjson.loads(orjson.dumps(PAGE))
    node = page
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return json.dumps(page).encode()  # the standard library writes integers beyond 64 bits


C0 = ("customers", 0)
# Bodies at the edge of the strict types: tolerated values, bounds, odd strings, unknown fields.
EDGES: list[bytes] = [
    _with((*C0, "customerNo"), value)
    for value in [
        "1\n",
        "\n1",
        "a\u180eb",
        "\u180e",
        "\u200b1",
        "1\u3000",
        "\u00a0",
        "\x85a",
        "a\u2028",
        "12/3",
    ]
] + [
    _with((*C0, "accountNo"), 2**63 - 1),
    _with((*C0, "accountNo"), 2**63),
    _with((*C0, "accountNo"), -(2**63)),
    _with((*C0, "accountNo"), 5.0),
    _with((*C0, "accountNo"), "17"),
    _with((*C0, "accountNo"), ""),
    _with((*C0, "accountNo"), True),
    _with((*C0, "balanceTotal"), 7),
    _with((*C0, "balanceTotal"), ""),
    _with((*C0, "balanceTotal"), "1.5"),
    _with((*C0, "balanceTotal"), 1.7976931348623157e308),
    _with((*C0, "vatLiable"), "true"),
    _with((*C0, "vatLiable"), 1),
    _with((*C0, "name"), 12),
    _with((*C0, "name"), ""),
    _with((*C0, "name"), "x" * 10_000),
    _with((*C0, "name"), "x" * 10_001),
    _with((*C0, "naceCodes"), ["a"] * 1000),
    _with((*C0, "naceCodes"), ["a"] * 1001),
    _with((*C0, "naceCodes"), [1, "b"]),
    _with((*C0, "registrationStatusDate"), ""),
    _with((*C0, "postalAddress"), {"cityName": "Oslo", "extra": [1, {"a": None}]}),
    _with((*C0, "postalAddress"), {"cityName": 5}),
    _with((*C0, "distribution"), {"einvoiceCode": ""}),
    _with((*C0, "newField"), {"a": [1, 2]}),
    _with((*C0, models.EXTRA_KEY), None),
    _with((*C0, models.EXTRA_KEY), {"a": 1}),
    _with((*C0, "model_extra"), {"a": 1}),
    _with(("summary", "totalCount"), ""),
    _with(("summary", "pageSizeLimit"), 10_001),
    _with(("summary", "queryId"), 7),
    _with(("summary", "other"), 1),
    _with(("other",), {"x": 1}),
    b'{"summary": {}, "customers": [{"customerNo": "\\ud800"}]}',
    b'{"summary": {}, "customers": [{"customerNo": "1", "customerNo": "2"}]}',
    b'{"summary": {}, "customers": [{"customerNo": "1", "balanceTotal": NaN}]}',
    b'{"summary": {}, "customers": [{"customerNo": "1", "balanceTotal": 1e400}]}',
    b'{"summary": {}, "customers": [{"customerNo": "1"}]} ',
    b'{"summary": {}, "customers": null}',
    b'{"summary": {}}',
    b'{"customers": []}',
]


def _outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(body, "client 1: page 1")
    except AmiliBadData as exc:
        return "bad data", (exc.field, str(exc))
    except Malformed as exc:
        return "malformed", str(exc)


@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_every_body_has_the_outcome_the_tolerant_models_give(body: bytes) -> None:
    assert _outcome(parse_list, body) == _outcome(parse_list_tolerant, body)


def test_unknown_fields_are_kept_in_model_extra_and_as_json() -> None:
    body = _with((*C0, "postalAddress"), {"cityName": "Oslo", "floor": 3})
    customer = parse_list(body).customers[0]
    assert customer.model_extra is None
    assert customer.postalAddress is not None and customer.postalAddress.model_extra == {"floor": 3}
    assert as_json(customer)["postalAddress"] == {
        **dict.fromkeys(tolerant.PostalAddress.model_fields),
        "cityName": "Oslo",
        "floor": 3,
    }


def test_tolerated_values_read_as_the_tolerant_models_read_them() -> None:
    customer = parse_list(_with((*C0, "accountNo"), "")).customers[0]
    assert customer.accountNo is None
    assert parse_list(_with((*C0, "customerNo"), 42)).customers[0].customerNo == "42"
    assert parse_list(_with((*C0, "balanceTotal"), 7)).customers[0].balanceTotal == 7.0


def test_get_one_takes_the_bare_object_or_a_wrapped_one_alike() -> None:
    bare = {"customerNo": "7", "accountNo": 1, "balanceTotal": 2}
    expected = parse_customer(orjson.dumps(bare))
    assert isinstance(expected, Customer) and expected.balanceTotal == 2.0
    for body in ({"customer": bare}, {"customers": [bare]}):
        assert parse_customer(orjson.dumps(body)) == expected


def test_personal_fields_stay_out_of_repr() -> None:
    customer = parse_customer(
        orjson.dumps({"customerNo": "7", "ssn": "01017012345", "dateOfBirth": "1970-01-01"})
    )
    assert customer.ssn == "01017012345"
    assert "01017012345" not in repr(customer) and "1970-01-01" not in repr(customer)
    assert "customerNo='7'" in repr(customer)


def test_an_answer_the_strict_decoder_refuses_is_counted() -> None:
    before = PAGES_TOLERANT._value.get()
    parse_list(orjson.dumps(PAGE))
    assert PAGES_TOLERANT._value.get() == before
    parse_list(_with((*C0, "newField"), 1))
    parse_customer(orjson.dumps({"customer": {"customerNo": "7"}}))
    assert PAGES_TOLERANT._value.get() == before + 2
