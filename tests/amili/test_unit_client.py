"""Unit tests of the ARM client against an in-memory API (`httpx.MockTransport`)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest

from service.amili import (
    AmiliAuthError,
    AmiliBadRequest,
    AmiliClient,
    AmiliForbidden,
    AmiliNotFound,
    AmiliProtocolError,
    AmiliQueryExpired,
    AmiliUnavailable,
    Customer,
    FilterSetSlicing,
    NamePrefixSlicing,
)
from service.amili._http import parse_retry_after
from service.amili.auth import parse_token_answer
from service.amili.models import ReadReport
from service.config import DEFAULT_SLICE_ALPHABET

from .fake_api import CLIENT_SECRET, FakeArm, make_customers, unit_settings

CLIENT = 2218


async def read_all(amili: AmiliClient, client_no: int = CLIENT, filters: dict[str, str] | None = None):
    read = amili.read(client_no, filters)
    pages = [page async for page in read]
    numbers = [c.customerNo for p in pages for c in p.customers]
    return read.report, pages, numbers


# -- auth ------------------------------------------------------------------------------------------


def test_token_answer_numbers_as_strings() -> None:
    answer = parse_token_answer({"access_token": "a", "token_type": "Bearer", "expires_in": "3599"})
    assert answer.lifetime == 3599


def test_token_answer_expires_on() -> None:
    now = 1_700_000_000.0
    assert parse_token_answer({"access_token": "a", "expires_on": "1700003600"}, now=now).lifetime == 3600
    assert parse_token_answer({"access_token": "a", "expires_on": 1700000060}, now=now).lifetime == 60
    iso = datetime.fromtimestamp(now + 120, UTC).isoformat().replace("+00:00", "Z")
    assert parse_token_answer({"access_token": "a", "expires_on": iso}, now=now).lifetime == pytest.approx(
        120
    )


def test_token_answer_jwt_exp_and_default() -> None:
    payload = base64.urlsafe_b64encode(orjson.dumps({"exp": 1_700_000_500})).decode().rstrip("=")
    jwt = f"eyJhbGciOiJub25lIn0.{payload}.sig"
    assert parse_token_answer({"access_token": jwt}, now=1_700_000_000).lifetime == 500
    assert parse_token_answer({"access_token": "opaque"}).lifetime == 300


def test_token_answer_rejects_missing_token() -> None:
    with pytest.raises(AmiliAuthError, match="without an access_token"):
        parse_token_answer({"token_type": "Bearer"})


async def test_concurrent_callers_share_one_token_request() -> None:
    fake = FakeArm({CLIENT: make_customers(5)}, token_delay=0.05)
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        found = await asyncio.gather(*(amili.get_customer(CLIENT, str(100000 + i)) for i in range(5)))
    assert [c.customerNo for c in found if c] == [str(100000 + i) for i in range(5)]
    assert fake.token_requests == 1
    form = dict(
        httpx.QueryParams(next(r for _, r in fake.requests if r.url.host == "auth.test").content.decode())
    )
    assert form == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": CLIENT_SECRET}


async def test_scope_resource_audience_sent() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    settings = unit_settings(scope="read:arm", resource="urn:arm", audience="arm-api")
    async with AmiliClient(settings, transport=fake.transport()) as amili:
        await amili.get_customer(CLIENT, "100000")
    form = dict(
        httpx.QueryParams(next(r for _, r in fake.requests if r.url.host == "auth.test").content.decode())
    )
    assert form["scope"] == "read:arm" and form["resource"] == "urn:arm" and form["audience"] == "arm-api"


async def test_token_cached_until_shortly_before_expiry() -> None:
    fake = FakeArm({CLIENT: make_customers(1)}, token_answer=lambda n: {"expires_in": 0.3})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        await amili.get_customer(CLIENT, "100000")
        await amili.get_customer(CLIENT, "100000")
        assert fake.token_requests == 1
        await asyncio.sleep(0.3)
        await amili.get_customer(CLIENT, "100000")
        assert fake.token_requests == 2


async def test_401_refreshes_once_and_retries() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        await amili.get_customer(CLIENT, "100000")
        fake.valid_tokens = {"someone-else"}  # the server revokes our token
        fake.token_answer = None
        assert await amili.get_customer(CLIENT, "100000") is not None
    assert fake.token_requests == 2


async def test_401_after_refresh_is_an_auth_error() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})

    def always_401(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(401, text="no") if request.url.host == "arm.test" else None

    fake.fault = always_401
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        with pytest.raises(AmiliAuthError, match="401 Unauthorized after a token refresh") as info:
            await amili.get_customer(CLIENT, "100000")
    assert fake.token_requests == 2
    assert "tok-" not in str(info.value) and CLIENT_SECRET not in str(info.value)


async def test_static_token_and_401() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    fake.valid_tokens = {"static-abc"}
    settings = unit_settings(token_url=None, client_id=None, client_secret=None, token="static-abc")
    async with AmiliClient(settings, transport=fake.transport()) as amili:
        assert await amili.get_customer(CLIENT, "100000") is not None
        fake.valid_tokens = {"other"}
        with pytest.raises(AmiliAuthError, match="static token") as info:
            await amili.get_customer(CLIENT, "100000")
    assert "static-abc" not in str(info.value)
    assert fake.token_requests == 0


async def test_token_endpoint_refusal_is_auth_error() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    settings = unit_settings(client_secret="wrong-secret")
    async with AmiliClient(settings, transport=fake.transport()) as amili:
        with pytest.raises(AmiliAuthError, match="token endpoint: POST /token answered 401") as info:
            await amili.get_customer(CLIENT, "100000")
    assert "wrong-secret" not in str(info.value)


async def test_token_endpoint_5xx_is_retried_then_auth_error() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    calls = 0

    def flaky_token(request: httpx.Request) -> httpx.Response | None:
        nonlocal calls
        if request.url.host == "auth.test":
            calls += 1
            if calls <= 2:
                return httpx.Response(503)
        return None

    fake.fault = flaky_token
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        assert await amili.get_customer(CLIENT, "100000") is not None
        fake.fault = lambda r: httpx.Response(502) if r.url.host == "auth.test" else None
        fake.valid_tokens = {"revoked"}
        with pytest.raises(AmiliAuthError, match="token endpoint"):
            await amili.get_customer(CLIENT, "100000")


# -- Retry-After ---------------------------------------------------------------------------------------


def test_retry_after_seconds_and_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-2") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = format_datetime(
        datetime.fromtimestamp(now + 10, UTC), usegmt=True
    )  # "Tue, 14 Nov 2023 22:13:30 GMT"
    assert parse_retry_after(date, now=now) == 11  # one extra second for the date's resolution
    past = format_datetime(datetime.fromtimestamp(now - 10, UTC), usegmt=True)
    assert parse_retry_after(past, now=now) == 0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=now) == 0


async def test_429_waits_at_least_retry_after() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    sent = 0

    def limited(request: httpx.Request) -> httpx.Response | None:
        nonlocal sent
        if request.url.host == "arm.test":
            sent += 1
            if sent == 1:
                return httpx.Response(429, headers={"Retry-After": "0.4"})
        return None

    fake.fault = limited
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        assert await amili.get_customer(CLIENT, "100000") is not None
    api = [t for t, r in fake.requests if r.url.host == "arm.test"]
    assert len(api) == 2 and api[1] - api[0] >= 0.4


async def test_429_http_date_pauses_all_calls() -> None:
    fake = FakeArm({CLIENT: make_customers(3)})
    sent = 0
    retry_at = 0.0

    def limited(request: httpx.Request) -> httpx.Response | None:
        nonlocal sent, retry_at
        if request.url.host == "arm.test":
            sent += 1
            if sent == 1:
                date = datetime.fromtimestamp(time.time() + 1, UTC)
                retry_at = time.monotonic() + 1
                return httpx.Response(429, headers={"Retry-After": format_datetime(date, usegmt=True)})
        return None

    fake.fault = limited
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        await amili.get_customer(CLIENT, "100000")
        await asyncio.gather(*(amili.get_customer(CLIENT, str(100000 + i)) for i in range(3)))
    later = [t for t, r in fake.requests if r.url.host == "arm.test"][1:]
    assert all(t >= retry_at - 0.01 for t in later)


async def test_retry_after_beyond_budget_gives_up_at_once() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    fake.fault = lambda r: (
        httpx.Response(429, headers={"Retry-After": "3600"}) if r.url.host == "arm.test" else None
    )
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        started = time.monotonic()
        with pytest.raises(AmiliUnavailable, match="Retry-After exceeds"):
            await amili.get_customer(CLIENT, "100000")
    assert time.monotonic() - started < 1


# -- errors and retries -----------------------------------------------------------------------------------


async def test_4xx_errors_name_client_path_status() -> None:
    fake = FakeArm({CLIENT: make_customers(1), 403: []})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        with pytest.raises(AmiliForbidden) as forbidden:
            await read_all(amili, 403)
        assert str(forbidden.value).startswith(
            "Amili API: client 403: GET /clients/403/customers answered 403 Forbidden: "
        )
        assert forbidden.value.status == 403 and forbidden.value.client_no == 403
        with pytest.raises(
            AmiliNotFound, match="client 9999: GET /clients/9999/customers answered 404 Not Found"
        ):
            await read_all(amili, 9999)
        fake.fault = lambda r: (
            httpx.Response(400, json={"message": "bad name"}) if r.url.host == "arm.test" else None
        )
        with pytest.raises(AmiliBadRequest, match=r"answered 400 Bad Request: .*bad name"):
            await read_all(amili)
    assert sum(1 for r in fake.list_requests() if "403" in r.url.path) == 1  # not retried


async def test_get_customer_absent_is_none() -> None:
    fake = FakeArm({CLIENT: make_customers(2)})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        customer = await amili.get_customer(CLIENT, "100001")
        assert isinstance(customer, Customer) and customer.accountNo == 500001
        assert customer.model_extra == {"someFutureField": {"x": 1}}
        assert await amili.get_customer(CLIENT, "nope/../1") is None


async def test_5xx_and_resets_are_retried() -> None:
    fake = FakeArm({CLIENT: make_customers(35)})
    failures = iter(["500", "reset", "502", "timeout", "503"])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.url.host != "arm.test":
            return None
        kind = next(failures, None)
        if kind == "reset":
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        if kind == "timeout":
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(int(kind)) if kind else None

    fake.fault = flaky
    async with AmiliClient(unit_settings(retry_attempts=6), transport=fake.transport()) as amili:
        report, _, numbers = await read_all(amili)
    assert sorted(numbers) == [str(100000 + i) for i in range(35)]
    assert sum(report.retries.values()) == 5
    assert report.api_calls["RemoteProtocolError"] == 1 and report.api_calls["ReadTimeout"] == 1


async def test_retries_exhausted_is_unavailable() -> None:
    fake = FakeArm({CLIENT: make_customers(3)})
    fake.fault = lambda r: (
        httpx.Response(503, text="down for maintenance") if r.url.host == "arm.test" else None
    )
    async with AmiliClient(unit_settings(retry_attempts=3), transport=fake.transport()) as amili:
        with pytest.raises(AmiliUnavailable) as info:
            await read_all(amili)
    assert "client 2218: GET /clients/2218/customers still failing after 3 attempt(s)" in str(info.value)
    assert "503" in str(info.value)


async def test_malformed_json_retried_then_protocol_error() -> None:
    fake = FakeArm({CLIENT: make_customers(25)})
    bad = 1

    def truncated(request: httpx.Request) -> httpx.Response | None:
        nonlocal bad
        if request.url.host == "arm.test" and bad > 0:
            bad -= 1
            return httpx.Response(200, content=b'{"summary": {"pageNo": 1, "curr')
        return None

    fake.fault = truncated
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        report, _, numbers = await read_all(amili)
        assert len(numbers) == 25 and report.retries == {"malformed_json": 1}
        bad = 100
        with pytest.raises(AmiliProtocolError, match="not valid JSON after 4 attempt"):
            await read_all(amili)


async def test_wrong_shape_is_protocol_error_not_retried() -> None:
    fake = FakeArm({CLIENT: make_customers(3)})
    fake.fault = lambda r: (
        httpx.Response(200, json={"summary": {}, "customers": [{"name": "x"}]})
        if r.url.host == "arm.test"
        else None
    )
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        with pytest.raises(AmiliProtocolError, match="customerNo"):
            await read_all(amili)
    assert len(fake.list_requests()) == 1


async def test_headers_and_userid() -> None:
    fake = FakeArm({CLIENT: make_customers(25)})
    settings = unit_settings(accept_language="nb-NO", user_id="sync-bot")
    async with AmiliClient(settings, transport=fake.transport()) as amili:
        await read_all(amili)
        await amili.get_customer(CLIENT, "100000")
    for request in fake.list_requests():
        assert request.headers["Accept-Language"] == "nb-NO"
        assert request.url.params["userid"] == "sync-bot"
        assert request.headers["Authorization"].startswith("Bearer tok-")
    first = fake.list_requests()[0].url.params
    assert first["pagesize"] == "10" and first["maximumcount"] == "100"
    later = fake.list_requests()[1].url.params
    assert "query" in later and "pageno" in later and "pagesize" not in later


async def test_rate_limit_is_client_wide() -> None:
    fake = FakeArm({CLIENT: make_customers(1)})
    async with AmiliClient(unit_settings(rate_limit=10), transport=fake.transport()) as amili:
        started = time.monotonic()
        await asyncio.gather(*(amili.get_customer(CLIENT, "100000") for _ in range(15)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.45  # a burst of 10, then 5 more at 10/s


# -- paging, guards, slicing ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["url", "null", "absent", "empty"])
async def test_reads_every_page_once_whatever_next_page(style: str) -> None:
    fake = FakeArm({CLIENT: make_customers(95)}, next_page_style=style)
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        report, pages, numbers = await read_all(amili)
    assert sorted(numbers) == sorted(str(100000 + i) for i in range(95))
    assert len(pages) == 10 and sorted(p.page_no for p in pages) == list(range(1, 11))
    assert report.pages_read == report.pages_total == 10
    assert report.coverage == "proven" and report.complete and not report.truncated
    assert report.expected_total == 95 and report.slices == 1 and report.customers == 95


async def test_empty_client() -> None:
    fake = FakeArm({CLIENT: []})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        report, pages, _ = await read_all(amili)
    assert pages == [] and report.complete and report.coverage == "proven" and report.slices == 1


async def test_repeated_page_is_detected() -> None:
    fake = FakeArm({CLIENT: make_customers(40)})
    original = fake.handle

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageno") == "3":  # the server ignores pageno and answers page 2
            request = httpx.Request("GET", request.url.copy_set_param("pageno", "2"), headers=request.headers)
            answer = await original(request)
            body = orjson.loads(answer.content)
            body["summary"]["pageNo"] = 3
            return httpx.Response(200, content=orjson.dumps(body))
        return await original(request)

    async with AmiliClient(unit_settings(concurrency=1), transport=httpx.MockTransport(handle)) as amili:
        with pytest.raises(AmiliProtocolError, match="page 3 repeats the whole client page 2"):
            await read_all(amili)


async def test_duplicate_customer_no_is_detected() -> None:
    rows = make_customers(30)
    rows[25]["customerNo"] = rows[3]["customerNo"]
    fake = FakeArm({CLIENT: rows})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        with pytest.raises(AmiliProtocolError, match="customerNo '100003' was already read"):
            await read_all(amili)


async def test_a_read_that_splits_leaves_its_prefixes_only_when_it_ends_without_error() -> None:
    rows = make_customers(120, names=["Ola", "Kari", "Émile"])
    settings = unit_settings(maximum_count=50, page_size=5)
    async with AmiliClient(settings, transport=FakeArm({CLIENT: rows}).transport()) as amili:
        async with amili.read(CLIENT) as reader:
            assert reader.name_prefixes().prefixes == {}  # not before the end
            numbers = [c.customerNo async for page in reader for c in page.customers]
        learned = reader.name_prefixes()
        assert len(numbers) == 120 and learned.customers == 120
        # the whole client was split; "émile", "kari", "ola" each hold 40, under the cap
        assert learned.prefixes == {"": "koé"}  # in code point order
        bad = [dict(r) for r in rows]
        bad[100]["customerNo"] = bad[3]["customerNo"]
    async with AmiliClient(settings, transport=FakeArm({CLIENT: bad}).transport()) as amili:
        async with amili.read(CLIENT) as reader:
            with pytest.raises(AmiliProtocolError, match="already read"):
                [c async for page in reader for c in page.customers]
        assert reader.name_prefixes().prefixes == {}


async def test_count_mismatch_is_detected() -> None:
    fake = FakeArm({CLIENT: make_customers(30)})
    original = fake.handle

    async def handle(request: httpx.Request) -> httpx.Response:
        answer = await original(request)
        body = orjson.loads(answer.content)
        if request.url.params.get("pageno") == "3":  # the last page is one customer short
            body["customers"] = body["customers"][:-1]
            body["summary"]["currentPageSize"] -= 1
        return httpx.Response(200, content=orjson.dumps(body))

    async with AmiliClient(unit_settings(), transport=httpx.MockTransport(handle)) as amili:
        with pytest.raises(AmiliProtocolError, match="hold 29 customers but totalCount is 30"):
            await read_all(amili)


# Wraps the fake like the test above (kept): each breaks the answer its own way, in the open.
async def test_total_pages_disagreeing_with_total_count() -> None:
    fake = FakeArm({CLIENT: make_customers(30)})
    original = fake.handle

    async def handle(request: httpx.Request) -> httpx.Response:
        answer = await original(request)
        if request.url.host != "arm.test":
            return answer
        body = orjson.loads(answer.content)
        body["summary"]["totalPages"] = 2
        return httpx.Response(200, content=orjson.dumps(body))

    async with AmiliClient(unit_settings(), transport=httpx.MockTransport(handle)) as amili:
        with pytest.raises(AmiliProtocolError, match="totalPages 2 disagrees with totalCount 30"):
            await read_all(amili)


@pytest.mark.parametrize("true_total", [True, False])
async def test_truncated_query_is_sliced_by_name(true_total: bool) -> None:
    fake = FakeArm({CLIENT: make_customers(450)}, true_total=true_total)
    async with AmiliClient(unit_settings(maximum_count=50), transport=fake.transport()) as amili:
        report, pages, numbers = await read_all(amili)
    assert sorted(numbers) == sorted(str(100000 + i) for i in range(450))
    assert len(numbers) == len(set(numbers))
    assert report.truncated and report.complete
    assert report.coverage == ("proven" if true_total else "unproven")
    assert report.expected_total == (450 if true_total else None)
    assert report.pages_read == report.pages_total
    assert all(p.slice_filters.get("name") for p in pages)
    # no truncated slice was read beyond its first page
    for request in fake.list_requests():
        if "query" in request.url.params:
            matched, cap, _ = fake.queries[request.url.params["query"]]
            assert len(matched) < cap


async def test_names_outside_alphabet_are_learned_from_the_truncated_page() -> None:
    rows = make_customers(120, names=["Émile", "Ola", "Kari"])
    fake = FakeArm({CLIENT: rows})
    async with AmiliClient(unit_settings(maximum_count=50), transport=fake.transport()) as amili:
        report, pages, numbers = await read_all(amili)
    assert sorted(numbers) == sorted(r["customerNo"] for r in rows)
    assert report.coverage == "proven" and report.complete and report.unreachable == 0
    assert {p.slice_filters["name"] for p in pages} == {"é", "o", "k"}
    assert report.probe_queries == 0 and report.gap_count == 0


async def test_names_equal_to_a_prefix_are_an_exact_shortfall() -> None:
    # 60 customers named exactly "Ola" and 40 "Olav ...": the slice "ola" is truncated (cap 50); its
    # children cannot match a name equal to "ola", and customerno is an exact match here
    rows = make_customers(100)
    for i, row in enumerate(rows):
        row["name"] = "Ola" if i < 60 else f"Olav {i}"
    fake = FakeArm({CLIENT: rows})
    async with AmiliClient(
        unit_settings(maximum_count=50, slice_customerno="off"), transport=fake.transport()
    ) as amili:
        report, _, numbers = await read_all(amili)
    assert sorted(numbers) == sorted(r["customerNo"] for r in rows[60:])
    assert report.coverage == "incomplete" and report.unreachable == 60
    assert report.gaps and report.gaps[0]["kind"] == "shortfall" and report.gaps[0]["missing"] == 60
    assert report.gaps[0]["slice"] == {"name": "ola"} and report.gaps[0]["exact"]
    assert report.probe_queries > 0  # it tried the probes before it gave up


async def test_unsplittable_slice_is_read_capped_and_incomplete() -> None:
    rows = make_customers(80, names=["Ola Nordmann"])
    fake = FakeArm({CLIENT: rows})
    slicing = NamePrefixSlicing("O", extra="", max_prefix_length=1)
    async with AmiliClient(
        unit_settings(maximum_count=50), transport=fake.transport(), slicing=slicing
    ) as amili:
        report, _, numbers = await read_all(amili)
    assert len(numbers) == 50
    assert report.coverage == "incomplete" and not report.complete
    assert any("cannot be split further" in note for note in report.coverage_notes)


async def test_filter_set_slicing_then_names() -> None:
    rows = make_customers(200)
    for i, row in enumerate(rows):
        row["customerCategory"] = "CONS" if i % 4 else "BUS"
    fake = FakeArm({CLIENT: rows})
    sets = [{"customercategory": "CONS"}, {"customercategory": "BUS"}]
    slicing = FilterSetSlicing(sets, then=NamePrefixSlicing(DEFAULT_SLICE_ALPHABET))
    async with AmiliClient(
        unit_settings(maximum_count=100), transport=fake.transport(), slicing=slicing
    ) as amili:
        report, pages, numbers = await read_all(amili)
    assert report.coverage == "proven" and report.complete
    assert sorted(numbers) == sorted(r["customerNo"] for r in rows)
    # CONS (150) is still truncated and refined by name; BUS (50) is read as it is
    assert any(p.slice_filters == {"customercategory": "BUS"} for p in pages)
    assert any("name" in p.slice_filters and p.slice_filters["customercategory"] == "CONS" for p in pages)


async def test_filtered_read_passes_filters() -> None:
    rows = make_customers(60)
    fake = FakeArm({CLIENT: rows})
    async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
        report, pages, numbers = await read_all(amili, filters={"name": "kari"})
    assert numbers and all(
        next(r for r in rows if r["customerNo"] == n)["name"].startswith("Kari") for n in numbers
    )
    assert report.filters == {"name": "kari"} and pages[0].slice_filters == {"name": "kari"}


async def test_expired_query_restarts_once_then_fails() -> None:
    fake = FakeArm({CLIENT: make_customers(60)})
    async with AmiliClient(unit_settings(concurrency=1), transport=fake.transport()) as amili:
        read = amili.read(CLIENT)
        seen = []
        async for page in read:
            seen.extend(c.customerNo for c in page.customers)
            if page.page_no == 2:
                fake.queries.clear()  # every queryId expires
        assert sorted(seen) == sorted(str(100000 + i) for i in range(60))
        assert read.report.query_restarts == 1 and read.report.complete

        async def expire_twice() -> None:
            async for page in amili.read(CLIENT):
                if page.page_no in (2, 3):
                    fake.queries.clear()

        with pytest.raises(AmiliQueryExpired, match="expired again after one restart"):
            await expire_twice()


async def test_pages_are_bounded_by_concurrency() -> None:
    fake = FakeArm({CLIENT: make_customers(300)})
    async with AmiliClient(
        unit_settings(concurrency=3, maximum_count=1000), transport=fake.transport()
    ) as amili:
        read = amili.read(CLIENT)
        consumed = 0
        async for _page in read:
            consumed += 1
            await asyncio.sleep(0.01)
            fetched = len(fake.list_requests())
            assert fetched - consumed <= 3
        assert consumed == 30


async def test_consumer_stopping_early_stops_the_read() -> None:
    fake = FakeArm({CLIENT: make_customers(300)})
    async with AmiliClient(unit_settings(concurrency=2), transport=fake.transport()) as amili:
        read = amili.read(CLIENT)
        async for _page in read:
            break
        await read.aclose()
        fetched = len(fake.list_requests())
        await asyncio.sleep(0.05)
        assert len(fake.list_requests()) == fetched < 30


def test_report_as_dict() -> None:
    report = ReadReport(client_no=1, pages_read=2, retries={"429": 1})
    data: dict[str, Any] = report.as_dict()
    assert data["pages_read"] == 2 and data["retries"] == {"429": 1} and data["coverage"] == "unproven"


async def test_no_secret_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from structlog.testing import capture_logs

    fake = FakeArm({CLIENT: make_customers(45)})
    state = {"n": 0}

    def chaos(request: httpx.Request) -> httpx.Response | None:
        state["n"] += 1
        token = request.headers.get("Authorization", "")
        if request.url.host != "arm.test":
            return None
        if state["n"] % 5 == 1:
            return httpx.Response(503, text=f"upstream said {token} and {CLIENT_SECRET}")
        if state["n"] % 7 == 2:
            return httpx.Response(429, headers={"Retry-After": "0"}, text=token)
        return None

    fake.fault = chaos
    errors: list[str] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with AmiliClient(unit_settings(retry_attempts=8), transport=fake.transport()) as amili:
            await read_all(amili)
            fake.valid_tokens = {"revoked"}
            fake.fault = lambda r: (
                httpx.Response(401, text=r.headers.get("Authorization", ""))
                if r.url.host == "arm.test"
                else None
            )
            try:
                await amili.get_customer(CLIENT, "100000")
            except Exception as exc:
                errors.append(f"{exc!s} {exc!r}")
            fake.fault = lambda r: (
                httpx.Response(403, text=f"{r.headers.get('Authorization')} {CLIENT_SECRET}")
                if r.url.host == "arm.test"
                else None
            )
            try:
                await read_all(amili)
            except Exception as exc:
                errors.append(f"{exc!s} {exc!r}")
    assert len(errors) == 2 and "401 Unauthorized after a token refresh" in errors[0]
    assert "403 Forbidden: Bearer *** ***" in errors[1]
    text = "\n".join([repr(logs), caplog.text, *errors])
    assert "amili.retry" in text and "stamina.retry_scheduled" not in text  # logged once, by us
    assert CLIENT_SECRET not in text
    assert "tok-" not in text.replace("Bearer ***", "")


async def test_cancelled_consumer_leaves_no_fetch_task_running() -> None:
    fake = FakeArm({CLIENT: make_customers(400)})
    async with AmiliClient(
        unit_settings(concurrency=3, maximum_count=1000), transport=fake.transport()
    ) as amili:
        got_page = asyncio.Event()

        async def consume() -> None:
            read = amili.read(CLIENT)
            try:
                async for _page in read:
                    got_page.set()
                    await asyncio.sleep(3600)  # the consumer holds a page when it is cancelled
            finally:
                await read.aclose()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_page.wait(), 10)
        assert any(t.get_name().startswith("amili-read-") for t in asyncio.all_tasks())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("amili-read-") and not t.done()]


async def test_read_as_context_manager_stops_its_tasks() -> None:
    fake = FakeArm({CLIENT: make_customers(300)})
    async with AmiliClient(
        unit_settings(concurrency=2, maximum_count=1000), transport=fake.transport()
    ) as amili:
        async with amili.read(CLIENT) as read:
            async for _page in read:
                break
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("amili-read-") and not t.done()]


async def test_a_split_does_not_wait_for_known_names_still_being_built() -> None:
    """A stream of known names (the snapshot's: a million take seconds) is read in a thread and no
    split waits for it. Here the names never come while the read lasts: the read splits from its
    sampled names alone and still reads every customer (a read that waited would hang until the
    thread's 10 s gate gives way, then report the names used)."""
    rows = make_customers(120, names=["Ola", "Kari", "Émile"])
    fake = FakeArm({CLIENT: rows})
    loop_thread, consumed_in = threading.get_ident(), []
    release = threading.Event()

    def snapshot_names():  # sorted and folded, as `SnapshotCache.names` streams them
        consumed_in.append(threading.get_ident())
        release.wait(10)  # blocks its thread only, until the read is over
        yield from sorted(["émile"] * 40 + ["kari"] * 40 + ["ola"] * 40)

    try:
        settings = unit_settings(maximum_count=50, page_size=5)
        async with (
            AmiliClient(settings, transport=fake.transport()) as amili,
            amili.read(CLIENT, known_names=snapshot_names()) as reader,
        ):
            numbers = [c.customerNo async for page in reader for c in page.customers]
    finally:
        release.set()
    assert consumed_in and consumed_in[0] != loop_thread
    assert sorted(numbers) == sorted(r["customerNo"] for r in rows)
    assert reader.report.splits >= 1 and reader.report.coverage == "proven"
    assert reader.report.known_names == 0  # split without them: nothing waited for the stream


async def test_known_names_built_before_a_split_are_used() -> None:
    """The names are built while the first request waits (here for its token): the split after it
    is planned with them."""
    rows = make_customers(120, names=["Ola", "Kari", "Émile"])
    fake = FakeArm({CLIENT: rows}, token_delay=0.5)
    built = threading.Event()

    def snapshot_names():
        yield from sorted(["émile"] * 40 + ["kari"] * 40 + ["ola"] * 40)
        built.set()

    settings = unit_settings(maximum_count=50, page_size=5)
    async with (
        AmiliClient(settings, transport=fake.transport()) as amili,
        amili.read(CLIENT, known_names=snapshot_names()) as reader,
    ):
        numbers = [c.customerNo async for page in reader for c in page.customers]
    assert built.is_set()
    assert sorted(numbers) == sorted(r["customerNo"] for r in rows)
    assert reader.report.known_names == 120 and reader.report.coverage == "proven"
