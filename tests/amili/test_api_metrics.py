"""API instrumentation in the /metrics exposition: the request histogram by route and status, the
build info, and each retry counted and logged once (stamina's own hooks are off)."""

from __future__ import annotations

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY, generate_latest

from service.amili import AmiliClient
from service.amili._instrument import route_of
from service.version import VERSION

from .fake_api import FakeArm, make_customers, unit_settings

CLIENT = 2218


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def histogram_count(route: str, status: str) -> float:
    return sample("amili_sync_api_request_seconds_count", route=route, status=status)


def test_routes() -> None:
    assert route_of("POST", "http://auth.test/token") == "token"
    assert route_of("GET", "clients/2218/customers") == "list"
    assert route_of("GET", "clients/2218/customers/100%2F7") == "one"
    assert route_of("GET", "clients/2218/other") == "other"


async def test_request_histogram_by_route_and_status_and_one_count_per_retry() -> None:
    failures = iter([httpx.Response(503, json={"message": "busy"})])

    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "arm.test" and "/customers/" in request.url.path:
            return next(failures, None)  # the first GET one fails, the retry gets through
        return None

    fake = FakeArm({CLIENT: make_customers(3)}, fault=fault)
    before = {
        key: histogram_count(*key)
        for key in [("token", "200"), ("one", "503"), ("one", "200"), ("list", "200")]
    }
    retries_before = sample("amili_sync_api_retries_total", cause="503")
    with structlog.testing.capture_logs() as logs:
        async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
            found = await amili.get_customer(CLIENT, "100000")
            read = amili.read(CLIENT)
            pages = [page async for page in read]
    assert found is not None
    assert sum(len(p.customers) for p in pages) == 3
    assert histogram_count("token", "200") - before[("token", "200")] == 1
    assert histogram_count("one", "503") - before[("one", "503")] == 1
    assert histogram_count("one", "200") - before[("one", "200")] == 1
    assert histogram_count("list", "200") - before[("list", "200")] == 1
    # the retry: counted once (ours), no stamina counter, logged once (ours), no stamina warning
    assert sample("amili_sync_api_retries_total", cause="503") - retries_before == 1
    assert (
        sample("stamina_retries_total", callable="<context block>", retry_num="1", error_type="Transient")
        == 0
    )
    assert [e["event"] for e in logs if "retry" in e["event"]] == ["amili.retry"]

    text = generate_latest().decode()
    assert 'amili_sync_api_request_seconds_bucket{le="0.01",route="one",status="503"}' in text
    assert f'amili_sync_build_info{{version="{VERSION}"}} 1.0' in text
    assert "stamina_retries_total{" not in text


async def test_a_request_without_an_answer_is_status_error() -> None:
    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "arm.test":
            raise httpx.ConnectError("connection refused", request=request)
        return None

    fake = FakeArm({CLIENT: make_customers(1)}, fault=fault)
    before = histogram_count("one", "error")
    async with AmiliClient(unit_settings(retry_attempts=2), transport=fake.transport()) as amili:
        with pytest.raises(Exception, match="ConnectError"):
            await amili.get_customer(CLIENT, "100000")
    assert histogram_count("one", "error") - before == 2
