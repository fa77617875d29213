"""A page's HTTP response (and its body) is freed as soon as it was parsed, not by the cyclic GC."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import httpx
import pytest

from service.amili import AmiliClient
from service.amili._http import unlink_stream

from .fake_api import FakeArm, make_customers, unit_settings

CLIENT = 2218


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request on and keeps a weak reference to every response it hands out."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.responses: list[weakref.ref[httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.responses.append(weakref.ref(response))
        return response

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.responses)


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_every_page_response_is_freed_without_the_cyclic_collector() -> None:
    fake = FakeArm({CLIENT: make_customers(95)})
    transport = RecordingTransport(fake.transport())
    async with AmiliClient(unit_settings(), transport=transport) as amili:
        read = amili.read(CLIENT)
        customers = 0
        async for page in read:
            customers += len(page.customers)
            del page
        assert customers == 95
        # 10 pages and the token request: gc is off, reference counting freed every one of them
        assert len(transport.responses) == read.report.api_requests + 1 == 11
        assert transport.alive() == 0


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_an_error_response_is_freed_too() -> None:
    fake = FakeArm({CLIENT: make_customers(5)})
    transport = RecordingTransport(fake.transport())
    async with AmiliClient(unit_settings(), transport=transport) as amili:
        assert await amili.get_customer(CLIENT, "999999") is None  # the API's 404 body
        assert await amili.get_customer(CLIENT, "100001") is not None
    assert len(transport.responses) == 3  # the token, the 404, the customer
    assert transport.alive() == 0


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_without_the_unlink_httpx_keeps_a_response_in_a_cycle() -> None:
    """The cycle is httpx's own (response <-> its bound stream): the check above can fail."""
    transport = RecordingTransport(httpx.MockTransport(lambda request: httpx.Response(200, content=b"{}")))
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get("https://arm.test/x")
        del response
        assert transport.alive() == 1
        response = await http.get("https://arm.test/y")
        unlink_stream(response)
        del response
        assert transport.alive() == 1  # the first is still alive, the second is gone
    gc.collect()
    assert transport.alive() == 0
