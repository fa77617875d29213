"""The engine's state extraction from decoded structs equals the reference of the pure core
(`tracked_state(customer_fields(...))`), for the sandbox's customers and for the odd ones."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench.decode_bench import render_pages
from service.amili.models import DECLARED_FIELDS
from service.amili.parsing import parse_customer, parse_list
from service.engine.extract import customer_fields, customer_state
from service.sync.state import TrackingRules, tracked_state

RULES = TrackingRules(
    {**TrackingRules().groups, "extra": ("distribution", "naceCodes", "vatLiable", "futureField")},
    include_personal=True,
)
NAMES = RULES.state_fields()


def test_every_sandbox_customer_reads_as_the_reference_says() -> None:
    customers = [c for body in render_pages(2, 500) for c in parse_list(body).customers]
    for c in customers:
        assert customer_state(c, NAMES, DECLARED_FIELDS) == tracked_state(customer_fields(c, NAMES), RULES)


ODD: list[dict[str, Any]] = [
    {"postalAddress": {"cityName": "Oslo", "floor": ""}},
    {"postalAddress": {"cityName": "", "floor": {"a": [1, ""]}}},
    {"postalAddress": {"addressLine1": "", "cityName": None}},
    {"postalAddress": {}, "distribution": {"type": "", "einvoiceCode": 0}},
    {"distribution": {"type": "EHF", "x": None}},
    {"naceCodes": []},
    {"naceCodes": ["", "01.1"]},
    {"vatLiable": False, "balanceTotal": 0, "name": ""},
    {"futureField": {"nested": ["", None, 3]}},
    {"futureField": ""},
    {"accountNo": "", "registrationStatusDate": ""},
]


@pytest.mark.parametrize("fields", ODD, ids=range(len(ODD)))
def test_odd_customers_read_as_the_reference_says(fields: dict[str, Any]) -> None:
    c = parse_customer(orjson.dumps({"customerNo": "7", "currency": "NOK", **fields}))
    state = customer_state(c, NAMES, DECLARED_FIELDS)
    assert state == tracked_state(customer_fields(c, NAMES), RULES)
    assert list(state) == [n for n in NAMES if n in state]  # the order of the names: the stored bytes
