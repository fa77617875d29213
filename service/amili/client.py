"""The async Amili ARM API client (`AmiliClient`).

    async with AmiliClient(settings.api) as amili:
        read = amili.read(2218)
        async for page in read:          # pages of any slice, in any order, each exactly once
            ...
        read.report                      # pages, slices, counts, retries, coverage
        await amili.get_customer(2218, "543210")   # Customer, or None when the API answers 404
        await amili.confirm_absent(2218, ["543210", ...])  # those confirmed absent, bounded concurrency

One `httpx.AsyncClient` (HTTP/1.1 keep-alive, a pool of `max_connections`), one rate limiter and one
token cache serve every read and call of a client object. `Accept-Language` and the `userid` query
parameter are sent with every API call when configured. Every status but 2xx, 401, 429 and 5xx is
an error naming the client, path and status (`AmiliBadRequest` 400, `AmiliForbidden` 403,
`AmiliNotFound` 404, `AmiliHTTPError` others); 401 refreshes the token once and retries
(`AmiliAuthError` when it comes back); 429/5xx/timeouts/resets are retried (see `_http`).

A 404 of GET-one means "absent" only when its body is the API's own error object
(`{"status": 404, "error": ..., "message": ...}`, at least `status` and one of the other two): a 404
from a gateway or proxy in front of the API (an HTML page, an empty body, another JSON shape) says
nothing about the customer and raises `AmiliGatewayNotFound`. The customerNo is percent-encoded as
one path segment; customerNos that cannot be (`/`, control characters) never pass `models`.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from service.config import ApiSettings
from service.logs import get_logger

from ._closing import ClosesOnExit
from ._http import Caller, CallStats, Redactor
from .auth import Auth, make_auth
from .errors import (
    AmiliAuthError,
    AmiliBadRequest,
    AmiliForbidden,
    AmiliGatewayNotFound,
    AmiliHTTPError,
    AmiliNotFound,
)
from .models import Customer, CustomerList, NamePrefixes
from .parsing import parse_customer, parse_list
from .planner import KnownNames
from .reader import CustomerRead
from .slicing import SliceStrategy, make_strategy

__all__ = ["AmiliClient", "CustomerRead"]

T = TypeVar("T")
log = get_logger("service.amili")

USER_AGENT = "amili-customer-sync/0.1"
_ERRORS: dict[int, type[AmiliHTTPError]] = {400: AmiliBadRequest, 403: AmiliForbidden, 404: AmiliNotFound}


def customer_path(client_no: int, customer_no: str) -> str:
    """The GET-one path: the customerNo percent-encoded as a single path segment."""
    return f"clients/{client_no}/customers/{quote(str(customer_no), safe='')}"


def is_api_error_body(body: bytes, status: int) -> bool:
    """Is `body` the API's own error object for `status` (not a gateway's page)?"""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(data, dict)
        and data.get("status") == status
        and isinstance(data.get("error", data.get("message")), str)
    )


class _Unauthorized(Exception):
    def __init__(self, excerpt: str) -> None:
        self.excerpt = excerpt
        super().__init__("401")


def connection_limits(settings: ApiSettings) -> httpx.Limits:
    """The connection pool of the client (and of the bench's raw floor, which must match it)."""
    return httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=30.0,
    )


class AmiliClient(ClosesOnExit):
    """Async client of the ARM customer endpoints. Use as an async context manager (or call `aclose`)."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        slicing: SliceStrategy | None = None,
    ) -> None:
        if not settings.base_url:
            raise ValueError("AMILI_SYNC_API__BASE_URL is required (there is no default)")
        self.settings = settings
        secrets = [s.get_secret_value() for s in (settings.token, settings.client_secret) if s is not None]
        self._redactor = Redactor(secrets)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if settings.accept_language:
            headers["Accept-Language"] = settings.accept_language
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.connect_timeout + settings.read_timeout,
            ),
            limits=connection_limits(settings),
            http1=True,
            http2=False,
            follow_redirects=False,
            transport=transport,
        )
        self._caller = Caller(self._http, settings, self._redactor)
        self._auth: Auth = make_auth(settings, self._caller, self._redactor)
        self._slicing = slicing if slicing is not None else make_strategy(settings)
        self._reads: weakref.WeakSet[CustomerRead] = weakref.WeakSet()
        self.maximum_count = settings.maximum_count
        self.concurrency = settings.concurrency

    # -- lifecycle -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        for read in list(self._reads):
            await read.aclose()
        await self._http.aclose()

    @property
    def auth(self) -> Auth:
        return self._auth

    # -- public API ----------------------------------------------------------------------------------

    def read(
        self,
        client_no: int,
        filters: Mapping[str, str] | None = None,
        *,
        known_names: Iterable[str | None] = (),
        name_prefixes: NamePrefixes | None = None,
    ) -> CustomerRead:
        """The customers of `client_no` matching `filters` (lower-case API names: customerno,
        accountno, organizationno, name, customercategory), as pages; see `CustomerRead`.
        `known_names` (e.g. the names in the local snapshot) teach the slicing planner which
        characters follow a dense prefix; `name_prefixes` (what an earlier read left,
        `CustomerRead.name_prefixes`) teach it the same at once, and `known_names` is then not read."""
        clean = {str(k).lower(): str(v) for k, v in (filters or {}).items() if v is not None and str(v) != ""}
        # prefixes a tenth of the cap start with: a split's children can be that small and still dense
        dense = max(1, self.settings.maximum_count // 16)
        known: KnownNames | Callable[[], KnownNames]
        if name_prefixes is not None and name_prefixes.prefixes:
            known = KnownNames.from_prefixes(name_prefixes.prefixes, name_prefixes.customers, dense=dense)
        elif isinstance(known_names, Collection):
            known = KnownNames(known_names, dense=dense)
        else:
            known = functools.partial(KnownNames, known_names, dense=dense)  # a stream: built in a thread
        read = CustomerRead(self, self._slicing, client_no, clean, on_close=self._reads.discard, known=known)
        self._reads.add(read)
        return read

    async def get_customer(self, client_no: int, customer_no: str) -> Customer | None:
        """One customer, or None when the API answers 404 with its own error body (absent)."""
        path = customer_path(client_no, customer_no)

        def handle(response: httpx.Response) -> Customer | None:
            if response.status_code == 404:
                if is_api_error_body(response.content, 404):
                    return None
                excerpt = self._redactor.excerpt(response.content)
                raise AmiliGatewayNotFound(client_no, "/" + path, 404, excerpt)
            self._check(response, client_no, path)
            return parse_customer(response.content, f"client {client_no}: GET one customer {customer_no}")

        return await self._api_call(client_no, path, {}, handle, CallStats())

    async def confirm_absent(
        self, client_no: int, customer_nos: Iterable[str], concurrency: int | None = None
    ) -> list[str]:
        """The customerNos of `customer_nos` that GET-one confirms absent, in their order.

        At most `concurrency` (default: the `concurrency` setting) GETs are in flight, and only that
        many tasks exist: the candidates are taken from the iterable as GETs finish, never all at
        once. The first error (anything but an API 404 or a 200) cancels the rest and is raised.
        """
        width = max(1, concurrency if concurrency is not None else self.concurrency)
        todo = enumerate(customer_nos)
        absent: list[tuple[int, str]] = []

        async def worker() -> None:
            for index, customer_no in todo:  # shared iterator: each candidate goes to one worker
                if await self.get_customer(client_no, customer_no) is None:
                    absent.append((index, customer_no))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(width):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure; the others were cancelled
        return [no for _, no in sorted(absent)]

    # -- used by CustomerRead ------------------------------------------------------------------------

    async def list_first(self, client_no: int, filters: dict[str, str], stats: CallStats) -> CustomerList:
        params: dict[str, Any] = {
            **filters,
            "pagesize": self.settings.page_size,
            "maximumcount": self.settings.maximum_count,
        }
        return await self._list(client_no, params, stats)

    async def list_page(self, client_no: int, query_id: str, page_no: int, stats: CallStats) -> CustomerList:
        return await self._list(client_no, {"query": query_id, "pageno": page_no}, stats)

    # -- internals -----------------------------------------------------------------------------------

    async def _list(self, client_no: int, params: dict[str, Any], stats: CallStats) -> CustomerList:
        path = f"clients/{client_no}/customers"

        what = f"client {client_no}: page {params.get('pageno', 1)}"
        if "query" in params:
            what += f" of query {str(params['query'])[:80]}"

        def handle(response: httpx.Response) -> CustomerList:
            self._check(response, client_no, path)
            return parse_list(response.content, what)

        return await self._api_call(client_no, path, params, handle, stats)

    def _check(self, response: httpx.Response, client_no: int, path: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        excerpt = self._redactor.excerpt(response.content)
        if status == 401:
            raise _Unauthorized(excerpt)
        raise _ERRORS.get(status, AmiliHTTPError)(client_no, "/" + path, status, excerpt)

    async def _api_call(
        self,
        client_no: int,
        path: str,
        params: dict[str, Any],
        handle: Callable[[httpx.Response], T],
        stats: CallStats,
    ) -> T:
        if self.settings.user_id:
            params = {**params, "userid": self.settings.user_id}
        used: list[str | None] = [None]

        async def headers() -> Mapping[str, str]:
            token = await self._auth.token()
            used[0] = token
            return {"Authorization": f"Bearer {token}"} if token is not None else {}

        for attempt in (1, 2):
            try:
                return await self._caller.call(
                    "GET",
                    path,
                    handle=handle,
                    client_no=client_no,
                    path="/" + path,
                    stats=stats,
                    headers=headers,
                    params=params,
                )
            except _Unauthorized as exc:
                if attempt == 2 or not self._auth.can_refresh:
                    why = "after a token refresh" if attempt == 2 else "(static token: no refresh possible)"
                    raise AmiliAuthError(
                        f"Amili API: client {client_no}: GET /{path} answered 401 Unauthorized {why}: {exc.excerpt}"
                    ) from None
                stats.retry("401")
                log.info("amili.unauthorized", clientNo=client_no, path="/" + path, action="refresh token")
                await self._auth.invalidate(used[0])
        raise AssertionError("unreachable")  # pragma: no cover
