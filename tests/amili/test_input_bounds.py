"""Input bounds of the ARM client: every poison page of the sandbox (over real HTTP) fails the read
with an error naming client, page and field; GET-one counts a 404 as "absent" only with the API's
own error body; customerNos round-trip through the URL path; confirmation has bounded concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from service.amili import AmiliBadData, AmiliClient, AmiliGatewayNotFound, AmiliProtocolError
from service.amili._http import Malformed
from service.amili.models import CustomerList
from service.amili.parsing import parse_list
from service.config import ApiSettings
from service.sandbox.faults import POISON_VARIANTS, FaultEngine, poison_body
from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.sandbox import sandbox_api_settings
from tests.amili.fake_api import BASE, FakeArm, make_customers, unit_settings

CLIENT = 2218


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox({CLIENT: 2_500}, seed=5) as sb:
        yield sb


def control(sb: SandboxHandle, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, sb.control_url + path, json=body, timeout=60)
    r.raise_for_status()
    return r.json()


# Keyword settings, alike other keyword calls in shape only (kept).
def api_settings(sb: SandboxHandle) -> ApiSettings:
    return sandbox_api_settings(
        sb,
        page_size=1000,
        rate_limit=1000,
        retry_attempts=2,
        retry_wait_initial=0.01,
        retry_wait_max=0.02,
        read_timeout=10,
    )


async def read_all(amili: AmiliClient, client_no: int) -> int:
    n = 0
    async for page in amili.read(client_no):
        n += len(page.customers)
    return n


# the field each variant's error names (None: a body that is not JSON, named by page only)
EXPECTED_FIELD: dict[str, str | None] = {
    "invalid_json": None,
    "not_object": "body",
    "wrong_type": "customers[0].balanceTotal",
    "int_overflow": "customers[0].accountNo",
    "nan": None,
    "infinity": "customers[0].balanceTotal",
    "invalid_utf8": None,
    "truncated": None,
    "huge_string": "customers[0].name",
    "deep_nesting": "customers[0].poisonExtra",
    "missing_customerno": "customers[0].customerNo",
    "bad_customerno": "customers[0].customerNo",
    "control_customerno": "customers[0].customerNo",
    "duplicate_customer": None,
    "duplicate_across_pages": None,
    "summary_contradiction": None,
    "negative_total": "summary.totalCount",
    "page_size_zero": "summary",
    "absurd_pages": "summary",
    "huge_list": "customers[0].naceCodes",
}


def test_every_variant_has_an_expectation() -> None:
    assert set(EXPECTED_FIELD) == set(POISON_VARIANTS) and len(POISON_VARIANTS) >= 10


@pytest.mark.parametrize("variant", POISON_VARIANTS)
async def test_a_poison_page_fails_the_read_naming_client_page_and_field(
    sandbox: SandboxHandle, variant: str
) -> None:
    control(sandbox, "POST", "/reset")
    # page 2 of 3 is poisoned (skip the first list request), so pages before it were fine
    skip = 0 if variant == "duplicate_across_pages" else 1
    control(sandbox, "POST", "/faults", {"faults": [{"kind": "poison", "variant": variant, "skip": skip}]})
    async with AmiliClient(api_settings(sandbox)) as amili:
        with pytest.raises(AmiliProtocolError) as info:
            await read_all(amili, CLIENT)
    message = str(info.value)
    assert f"client {CLIENT}" in message, message
    assert "page" in message, message
    field = EXPECTED_FIELD[variant]
    if field is not None:
        assert isinstance(info.value, AmiliBadData), message
        assert info.value.field == field, message
        assert f"client {CLIENT}: page " in info.value.where
    fired = control(sandbox, "GET", "/stats")["faultsFired"]
    assert fired.get("poison", 0) >= 1
    control(sandbox, "POST", "/reset")


async def test_the_same_read_succeeds_without_poison(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "/reset")
    async with AmiliClient(api_settings(sandbox)) as amili:
        assert await read_all(amili, CLIENT) == 2_500


def test_poison_spec_needs_a_known_variant() -> None:
    engine = FaultEngine()
    with pytest.raises(ValueError, match="variant is required"):
        engine.set({"kind": "poison"}, 1)
    with pytest.raises(ValueError, match="variant must be one of"):
        engine.set({"kind": "poison", "variant": "nope"}, 1)
    engine.set({"kind": "poison", "variant": "nan"}, 1)
    assert engine.rules[0].routes == frozenset({"list"})


PAGE = {
    "summary": {
        "pageNo": 1,
        "currentPageSize": 2,
        "pageSizeLimit": 10,
        "totalPages": 1,
        "totalCount": 2,
        "maximumCount": 10000,
        "queryId": "q",
    },
    "customers": [{"customerNo": "1", "balanceTotal": 1.5}, {"customerNo": "2", "balanceTotal": 7}],
}


@pytest.mark.parametrize("variant", POISON_VARIANTS)
def test_every_poison_body_is_refused_by_the_parser_or_the_reader_guards(variant: str) -> None:
    engine = FaultEngine()
    engine.set({"kind": "poison", "variant": variant}, 1)
    rule = engine.rules[0]
    body = orjson.dumps(PAGE)
    if variant == "duplicate_across_pages":  # needs an earlier page with another first customer
        other = orjson.dumps({**PAGE, "customers": [{"customerNo": "9"}, {"customerNo": "8"}]})
        assert poison_body(rule, other, CLIENT) == other
    poisoned = poison_body(rule, body, CLIENT)
    assert poisoned != body
    if variant in ("duplicate_customer", "duplicate_across_pages", "summary_contradiction"):
        parsed = parse_list(poisoned, "client 1: page 1")  # valid alone: the reader's guards refuse it
        nos = [c.customerNo for c in parsed.customers]
        assert len(set(nos)) < len(nos) or "9" in nos or parsed.summary.currentPageSize != len(nos)
        return
    with pytest.raises((AmiliProtocolError, Malformed)) as info:
        parse_list(poisoned, "client 1: page 1")
    assert "client 1: page 1" in repr(info.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("customers", 0, "accountNo"), 2**63),
        (("customers", 0, "accountNo"), -(2**63) - 1),
        (("customers", 0, "yearOfBirth"), 10**30),
        (("customers", 0, "customerNo"), "a\\b"),
        (("customers", 0, "customerNo"), " 12"),
        (("customers", 0, "customerNo"), "x" * 65),
        (("customers", 0, "customerNo"), ""),
        (("customers", 0, "postalAddress"), {"cityName": "x" * 10_001}),
        (("customers", 0, "postalAddress"), {"extraNumber": 2**64}),
        (("customers", 0, "distribution"), {"einvoiceCode": 2**63}),
        (("summary", "pageSizeLimit"), None),
        (("summary", "totalPages"), 100_001),
        (("summary", "totalPages"), 3),
        (("summary", "currentPageSize"), 11),
        (("summary", "pageNo"), -1),
    ],
)
def test_values_outside_the_bounds_are_refused(path: tuple[str | int, ...], value: object) -> None:
    page: Any = orjson.loads(orjson.dumps(PAGE))
    node = page
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(AmiliBadData) as info:
        parse_list(_dumps(page))
    assert info.value.field.startswith(str(path[0]))


def _dumps(page: Any) -> bytes:
    """orjson refuses integers beyond 64 bits: write them with the standard library."""
    return json.dumps(page).encode()


def test_nesting_beyond_the_parser_limit_is_bad_data_not_retried() -> None:
    deep = b'{"summary": {}, "customers": [{"customerNo": "1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    with pytest.raises(AmiliBadData, match=r"client 1: page 1: field body: .*recursion limit"):
        parse_list(deep, "client 1: page 1")


def test_bounds_keep_ordinary_values() -> None:
    page: Any = orjson.loads(orjson.dumps(PAGE))
    page["customers"][0].update(
        {"customerNo": "Æ 12#?%&", "accountNo": 2**63 - 1, "balanceTotal": -1e300, "extra": {"a": [1, 2]}}
    )
    parsed = parse_list(orjson.dumps(page))
    assert isinstance(parsed, CustomerList) and parsed.customers[0].customerNo == "Æ 12#?%&"


# --- GET-one ---------------------------------------------------------------------------------------


async def test_customer_nos_round_trip_through_the_url_path(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "/reset")
    odd = ["A B", "7#1", "q?x=1", "50%", "Ærø-12", "a+b", "x;y"]
    settings = api_settings(sandbox)
    async with AmiliClient(settings) as amili, httpx.AsyncClient(timeout=30) as http:
        token = await amili.auth.token()
        for no in odd:
            r = await http.post(
                f"{sandbox.base_url}/clients/{CLIENT}/customers",
                json={"customerNo": no, "name": "Odd Number"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code in (200, 201), r.text
        for no in odd:
            customer = await amili.get_customer(CLIENT, no)
            assert customer is not None and customer.customerNo == no
        assert await amili.get_customer(CLIENT, "no such customer") is None
    control(sandbox, "POST", "/reset")


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (404, b"<html><body>404 Not Found</body></html>", {"content-type": "text/html"}),
        (404, b"", {}),
        (404, b'{"message": "no Route matched with those values"}', {"content-type": "application/json"}),
        (404, b'{"status": 404}', {"content-type": "application/json"}),
    ],
)
async def test_a_404_without_the_api_error_body_is_not_absent(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"access_token": "gateway-test-token", "expires_in": 3600})
        return httpx.Response(status, content=body, headers=headers)

    async with AmiliClient(unit_settings(), transport=httpx.MockTransport(gateway)) as amili:
        with pytest.raises(AmiliGatewayNotFound, match="not the API's error body"):
            await amili.get_customer(CLIENT, "100001")
        with pytest.raises(AmiliGatewayNotFound):
            await amili.confirm_absent(CLIENT, ["100001", "100002"])


async def test_confirm_absent_keeps_at_most_concurrency_gets_in_flight() -> None:
    fake = FakeArm({CLIENT: make_customers(50)})
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.host != "arm.test":
            return await fake.handle(request)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return await fake.handle(request)

    created = 0

    def candidates() -> Iterator[str]:
        nonlocal created
        for i in range(200):
            created += 1
            # present ones (100000..100049) and absent ones, interleaved
            yield str(100000 + i) if i % 4 else f"gone-{i}"

    async with AmiliClient(unit_settings(), transport=httpx.MockTransport(slow)) as amili:
        absent = await amili.confirm_absent(CLIENT, candidates(), concurrency=3)
    assert created == 200
    assert peak <= 3
    expected = [f"gone-{i}" for i in range(0, 200, 4)] + [str(100000 + i) for i in range(50, 200) if i % 4]
    assert sorted(absent) == sorted(expected)
    assert absent[0] == "gone-0"  # in the order given
    assert BASE.startswith("https://")


@pytest.mark.parametrize(
    ("variant", "field"),
    [("wrong_type", "balanceTotal"), ("int_overflow", "accountNo"), ("nan", None)],
)
async def test_a_poison_get_one_answer_is_an_error_not_a_customer(
    sandbox: SandboxHandle, variant: str, field: str | None
) -> None:
    control(sandbox, "POST", "/reset")
    control(
        sandbox, "POST", "/faults", {"faults": [{"kind": "poison", "variant": variant, "routes": ["one"]}]}
    )
    async with AmiliClient(api_settings(sandbox)) as amili:
        with pytest.raises(AmiliProtocolError) as info:
            await amili.get_customer(CLIENT, "1000001")
    assert f"client {CLIENT}" in str(info.value)
    if field is not None:
        assert isinstance(info.value, AmiliBadData) and info.value.field == field
        assert "GET one customer 1000001" in str(info.value) and "more field" not in str(info.value)
    control(sandbox, "POST", "/reset")
