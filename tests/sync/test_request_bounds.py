"""Request bounds: every kind of malformed request gets its own DLQ code and a reason naming the
field, never the values; the limits themselves still accept what they should."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from service.sync.requests import INT64_MAX, MAX_FILTER_CHARS, MalformedRequest, parse_request
from tests.badinput.cases import KINDS, good_body, make

MAX_BYTES = 65_536


def test_there_are_at_least_twenty_kinds() -> None:
    assert len(KINDS) >= 20
    assert len({code for _, code in KINDS.values()}) >= 10


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_malformed_request_is_refused_with_its_code(kind: str) -> None:
    for seed in range(3):
        bad = make(kind, 2218, random.Random(seed))
        with pytest.raises(MalformedRequest) as info:
            parse_request(bad.key, bad.value, MAX_BYTES)
        assert info.value.code == bad.code, str(info.value)
        assert str(info.value) and "\n" not in str(info.value)


def test_a_client_number_above_int64_is_out_of_range_not_a_crash() -> None:
    body = {**good_body(1, random.Random(1)), "clientNo": INT64_MAX + 1}
    with pytest.raises(MalformedRequest) as info:
        parse_request(str(INT64_MAX + 1).encode(), json.dumps(body).encode(), MAX_BYTES)
    assert info.value.code == "out_of_range" and "clientNo" in str(info.value)


def test_the_largest_int64_client_number_is_accepted() -> None:
    body = {**good_body(1, random.Random(1)), "clientNo": INT64_MAX}
    request = parse_request(str(INT64_MAX).encode(), json.dumps(body).encode(), MAX_BYTES)
    assert request.clientNo == INT64_MAX


def test_reasons_never_quote_filter_values() -> None:
    body = {**good_body(2218, random.Random(1)), "filters": {"name": "Ola\u0000Nordmann"}}
    with pytest.raises(MalformedRequest) as info:
        parse_request(b"2218", json.dumps(body).encode(), MAX_BYTES)
    assert "Nordmann" not in str(info.value) and "filters.name" in str(info.value)


def test_limits_accept_what_they_should() -> None:
    body = {
        "requestId": str(uuid.uuid4()),
        "clientNo": 2218,
        "requestedAt": "2026-11-24T10:00:00Z",
        "filters": {"name": "Å" * MAX_FILTER_CHARS, "customercategory": "CONS", "accountno": "123"},
        "reason": "nightly run, ÆØÅ",
    }
    request = parse_request(b"2218", json.dumps(body).encode(), MAX_BYTES)
    assert request.filter_query["name"] == "Å" * MAX_FILTER_CHARS
