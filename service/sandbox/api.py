"""The ARM endpoints (customers list/one/write), the token endpoint and health.

Handlers raise `ApiError`; the app's one exception handler renders it (see app.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import urllib.parse
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from service.sandbox import data as g
from service.sandbox.config import CustomerNoFilter, NextPageOnLast, OverCap, TotalCount
from service.sandbox.queries import Query
from service.sandbox.responses import ApiError, json_response
from service.sandbox.state import SandboxState
from service.sandbox.store import ClientData, Filters
from service.sandbox.validation import (
    int_param,
    json_body,
    merge_customer,
    query_params,
    today,
    validate_customer_body,
)


class Api:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _client(self, request: Request) -> ClientData:
        """Authenticate (401), then the client: 400 bad number, 404 unknown, 403 not in the token."""
        auth = self.state.tokens.verify(request.headers.get("authorization"))
        if not auth.ok:
            raise ApiError(401, auth.message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        raw = request.path_params["clientno"]
        if not raw.isdigit() or not raw.isascii():
            raise ApiError(400, f"clientno must be an integer, got {raw!r}", "clientno")
        client_no = int(raw)
        client = self.state.clients.get(client_no)
        if client is None:
            raise ApiError(404, f"client {client_no} not found")
        if auth.clients is not None and client_no not in auth.clients:
            raise ApiError(403, f"the token does not give access to client {client_no}")
        return client

    def _link_base(self, request: Request) -> str:
        if self.state.config.public_url:
            return self.state.config.public_url.rstrip("/") + self.state.base_path
        return (
            f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}{self.state.base_path}"
        )

    # --- list ----------------------------------------------------------------------------------
    async def list_customers(self, request: Request) -> Response:
        client = self._client(request)
        params = query_params(request)
        now = time.monotonic()
        qid = params.get("query")
        page_no = int_param(params, "pageno")
        if page_no is None:
            page_no = 1
        if page_no < 1:
            raise ApiError(400, f"pageno must be 1 or more, got {page_no}", "pageno")
        if qid is not None:
            query = self._open_query(client, qid, now)
        else:
            query = self._new_query(client, params, now)
        query.reads += 1
        query.pages_read.add(page_no)
        return Response(self._page(query, page_no, self._link_base(request)), media_type="application/json")

    def _open_query(self, client: ClientData, qid: str, now: float) -> Query:
        query, why = self.state.queries.lookup(qid, now)
        if query is not None and query.client is not client:
            query, why = None, "unknown"
        if query is not None and self.state.faults.query_expired(
            client.client_no, query.reads, now - query.created
        ):
            self.state.queries.forget(qid, "expired (sandbox fault)")
            query, why = None, "expired (sandbox fault)"
        if query is None:
            raise ApiError(404, f"query {qid!r} is {why}", "query")
        return query

    def _new_query(self, client: ClientData, params: dict[str, str], now: float) -> Query:
        cfg = self.state.config
        page_size = self._page_size(params)
        maximum = self._maximum_count(params)
        filters = Filters(
            customer_no=params.get("customerno"),
            account_no=int_param(params, "accountno"),
            organization_no=params.get("organizationno"),
            name=params.get("name"),
            category=params.get("customercategory"),
            customer_no_prefix=cfg.customer_no_filter == CustomerNoFilter.PREFIX,
        )
        refs, total = client.select(filters, maximum, cfg.list_order)
        return self.state.queries.create(client, refs, total, page_size, maximum, now)

    def _page_size(self, params: dict[str, str]) -> int:
        cfg = self.state.config
        page_size = int_param(params, "pagesize")
        if page_size is not None and page_size < 5:
            return 10
        return self._capped("pagesize", page_size, cfg.page_size_default, cfg.page_size_cap)

    def _maximum_count(self, params: dict[str, str]) -> int:
        cfg = self.state.config
        maximum = int_param(params, "maximumcount")
        if maximum is not None and maximum < 1:
            raise ApiError(400, f"maximumcount must be 1 or more, got {maximum}", "maximumcount")
        return self._capped("maximumcount", maximum, cfg.maximum_count_cap, cfg.maximum_count_cap)

    def _capped(self, name: str, value: int | None, default: int, cap: int) -> int:
        """`default` when not given; above `cap`: the cap, or 400 when the over-cap mode says so."""
        if value is None:
            return default
        if value > cap:
            if self.state.config.over_cap == OverCap.ERROR:
                raise ApiError(400, f"{name} must be at most {cap}, got {value}", name)
            return cap
        return value

    def _page(self, query: Query, page_no: int, link_base: str) -> bytes:
        key = (query.id, page_no, link_base)
        body = self.state.pages.get(key)
        if body is None:
            body = self._render(query, page_no, link_base)
            self.state.pages.put(key, body)
        if self.state.config.prefetch and page_no < query.total_pages:
            # Render the next page once this response is out (the event loop runs it after the
            # current request), so a reader that follows nextPage finds it ready.
            asyncio.get_running_loop().call_soon(self._prefetch, query, page_no + 1, link_base)
        return body

    def _prefetch(self, query: Query, page_no: int, link_base: str) -> None:
        key = (query.id, page_no, link_base)
        if self.state.pages.get(key) is None and self.state.queries.is_open(query.id):
            self.state.pages.put(key, self._render(query, page_no, link_base))

    def _render(self, query: Query, page_no: int, link_base: str) -> bytes:
        cfg = self.state.config
        size = query.page_size
        total_pages = query.total_pages
        refs = query.refs[(page_no - 1) * size : page_no * size]
        resolve = query.client.resolve
        customers = [resolve(r) for r in refs]
        url = f"{link_base}/clients/{query.client.client_no}/customers?query={query.id}&pageno="
        total = query.total if cfg.total_count == TotalCount.TRUE else min(query.total, query.maximum)
        summary: dict[str, Any] = {
            "pageNo": page_no,
            "currentPageSize": len(customers),
            "pageSizeLimit": size,
            "totalPages": total_pages,
            "totalCount": total,
            "maximumCount": query.maximum,
            "nextPage": f"{url}{page_no + 1}" if page_no < total_pages else None,
            "lastPage": f"{url}{total_pages}" if total_pages else None,
            "queryId": query.id,
        }
        if cfg.next_page_on_last == NextPageOnLast.ABSENT:
            for name in ("nextPage", "lastPage"):
                if summary[name] is None:
                    del summary[name]
        return orjson.dumps({"summary": summary, "customers": customers})

    # --- one customer --------------------------------------------------------------------------
    async def get_customer(self, request: Request) -> Response:
        client = self._client(request)
        key = client.find(request.path_params["customerno"])
        customer = client.get(key) if key is not None else None
        if customer is None:
            raise ApiError(404, f"customer {request.path_params['customerno']!r} not found")
        return json_response(customer)

    async def _customer_body(self, request: Request) -> tuple[ClientData, dict[str, Any]]:
        """The client and the validated customer body of a POST/PUT."""
        client = self._client(request)
        body = validate_customer_body(await json_body(request))
        if body.get("clientNo") is not None and body["clientNo"] != client.client_no:
            raise ApiError(400, f"clientNo {body['clientNo']} does not match the path", "clientNo")
        return client, body

    async def post_customer(self, request: Request) -> Response:
        """POST: create one customer, or update it when the customerNo exists."""
        client, body = await self._customer_body(request)
        customer_no = body.get("customerNo")
        if customer_no is not None and customer_no.strip() == "":
            raise ApiError(400, "customerNo must not be empty", "customerNo")
        key = client.find(customer_no) if customer_no is not None else None
        if key is not None:
            current = client.get(key)
            assert current is not None
            updated = merge_customer(current, body, today())
            client.store(key, updated)
            return json_response(updated)
        account_no = body.get("accountNo") or g.BASE_ACCOUNT_NO + client.next_key
        blank = g.blank_customer(client.client_no, account_no, customer_no or "")
        created = merge_customer(blank, body, today())
        created = client.create(created, customer_no)
        return json_response(created, 201)

    async def put_customer(self, request: Request) -> Response:
        """PUT: update the customer named by customerNo in the body."""
        client, body = await self._customer_body(request)
        customer_no = body.get("customerNo")
        if not customer_no:
            raise ApiError(400, "customerNo is required", "customerNo")
        key, current = self._existing(client, customer_no)
        updated = merge_customer(current, body, today())
        client.store(key, updated)
        return json_response(updated)

    async def delete_customer(self, request: Request) -> Response:
        client = self._client(request)
        customer_no = request.path_params["customerno"]
        key, current = self._existing(client, customer_no)
        balance = current.get("balanceTotal") or 0
        if balance != 0:
            raise ApiError(422, f"customer {customer_no!r} has a balance ({balance}) and cannot be deleted")
        client.delete(key)
        return json_response({"customerNo": current["customerNo"], "deleted": True})

    @staticmethod
    def _existing(client: ClientData, customer_no: str) -> tuple[int, g.Customer]:
        """The key and current state of a customer a write names; 404 when there is none."""
        key = client.find(customer_no)
        current = client.get(key) if key is not None else None
        if key is None or current is None:
            raise ApiError(404, f"customer {customer_no!r} not found")
        return key, current

    # --- token and health ----------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        """OAuth2 client credentials, from the form or HTTP Basic; errors in OAuth2's shape."""
        tokens = self.state.tokens
        form = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        client_secret = form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if not client_id and basic.lower().startswith("basic "):
            client_id, client_secret = _basic_credentials(basic)
        if grant != "client_credentials":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                400,
            )
        if not tokens.credentials_ok(client_id, client_secret):
            return json_response(
                {"error": "invalid_client", "error_description": "unknown client_id or secret"}, 401
            )
        self.state.stats.tokens_issued += 1
        return json_response(tokens.issue())

    async def health(self, request: Request) -> Response:
        return json_response({"status": "Healthy"})


def _basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret
